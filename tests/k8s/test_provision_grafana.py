"""provision_grafana.py (grafana-client) against the recorded Grafana HTTP API contract
(tests/k8s/grafana_contract.py, served on 127.0.0.1): creates, is idempotent, repairs drift."""
from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent
CALL_TIMEOUT_S = 5.0


def _load_contract():
    spec = importlib.util.spec_from_file_location("grafana_contract", HERE / "grafana_contract.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def grafana():
    gc = _load_contract()
    contract = gc.GrafanaContract(token="tok-123")
    server, url = gc.serve(contract)
    try:
        yield contract, url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def pg(tool):
    return tool("provision_grafana")


def _api(url, credential="tok-123"):
    from grafana_client import GrafanaApi
    return GrafanaApi.from_url(url, credential=credential, timeout=CALL_TIMEOUT_S)


def _settings(pg):
    return pg.Settings(prometheus_url="http://prometheus-operated.monitoring.svc:9090")


def _dashboard(pg):
    return json.loads(pg.DASHBOARD.read_text())


def test_first_run_creates_datasource_folder_and_dashboard(grafana, pg):
    contract, url = grafana
    report = pg.provision(_api(url), _dashboard(pg), _settings(pg))
    assert report == ["datasource sparse24-prometheus: created", "folder sparse24: created",
                      "dashboard sparse24-llm: created"]
    ds = contract.datasources["sparse24-prometheus"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus-operated.monitoring.svc:9090"
    stored = contract.dashboards["sparse24-llm"]
    assert stored["meta"]["folderUid"] == "sparse24"
    ds_var = next(v for v in stored["dashboard"]["templating"]["list"] if v["type"] == "datasource")
    assert ds_var["current"]["value"] == "sparse24-prometheus"
    assert len(stored["dashboard"]["panels"]) == len(_dashboard(pg)["panels"])


def test_second_run_changes_nothing(grafana, pg):
    contract, url = grafana
    pg.provision(_api(url), _dashboard(pg), _settings(pg))
    writes = list(contract.writes)
    report = pg.provision(_api(url), _dashboard(pg), _settings(pg))
    assert all(line.endswith("unchanged") for line in report), report
    assert contract.writes == writes
    assert contract.dashboards["sparse24-llm"]["dashboard"]["version"] == 1


def test_drift_is_repaired_in_place(grafana, pg):
    contract, url = grafana
    pg.provision(_api(url), _dashboard(pg), _settings(pg))
    contract.datasources["sparse24-prometheus"]["url"] = "http://elsewhere:9090"
    contract.dashboards["sparse24-llm"]["dashboard"]["title"] = "edited by hand"
    report = pg.provision(_api(url), _dashboard(pg), _settings(pg))
    assert report == ["datasource sparse24-prometheus: updated", "folder sparse24: unchanged",
                      "dashboard sparse24-llm: updated"]
    assert contract.datasources["sparse24-prometheus"]["url"].startswith("http://prometheus-operated")
    assert contract.dashboards["sparse24-llm"]["dashboard"]["version"] == 2
    assert len(contract.datasources) == 1 and len(contract.dashboards) == 1


def test_dry_run_writes_nothing(grafana, pg):
    contract, url = grafana
    report = pg.provision(_api(url), _dashboard(pg), _settings(pg), dry_run=True)
    assert [r.split(": ")[1] for r in report] == ["created", "created", "created"]
    assert contract.writes == []


def test_bad_credentials_fail_loudly(grafana, pg):
    from grafana_client.client import GrafanaUnauthorizedError
    _, url = grafana
    with pytest.raises(GrafanaUnauthorizedError):
        pg.provision(_api(url, credential="wrong"), _dashboard(pg), _settings(pg))


def test_dashboard_without_title_is_rejected_by_grafana(grafana, pg):
    from grafana_client.client import GrafanaClientError
    _, url = grafana
    broken = _dashboard(pg)
    broken["title"] = ""
    with pytest.raises(GrafanaClientError) as e:
        pg.provision(_api(url), broken, _settings(pg))
    assert e.value.status_code == 400


def test_cli_runs_end_to_end_with_basic_auth(grafana, pg, monkeypatch, capsys):
    contract, url = grafana
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    monkeypatch.setenv("GRAFANA_USER", "admin")
    monkeypatch.setenv("GRAFANA_PASSWORD", "admin")
    rc = pg.main(["--grafana-url", url, "--prometheus-url", "http://prom:9090", "--timeout-s", str(CALL_TIMEOUT_S)])
    assert rc == 0
    assert capsys.readouterr().out.splitlines()[-1] == "dashboard sparse24-llm: created"
    assert contract.datasources["sparse24-prometheus"]["url"] == "http://prom:9090"


def test_cli_reports_unreachable_grafana_and_bad_token_cleanly(grafana, pg, monkeypatch, capsys):
    import socket
    _, url = grafana
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("GRAFANA_TOKEN", "wrong")
    common = ["--prometheus-url", "http://prom:9090", "--timeout-s", str(CALL_TIMEOUT_S)]
    assert pg.main(["--grafana-url", url, *common]) == 1
    assert "answered 401" in capsys.readouterr().err
    assert pg.main(["--grafana-url", dead, *common]) == 1
    assert "cannot reach grafana" in capsys.readouterr().err
