"""Create the Prometheus datasource, a folder and the sparse24 dashboard in Grafana, idempotently.

Uses grafana-client (the maintained successor of grafana-api). Running it twice changes nothing the
second time: each object is read by uid first and only created, or updated when it differs.
The dashboard's `datasource` variable is pointed at the provisioned datasource.

Usage:
  GRAFANA_TOKEN=... python k8s/tools/provision_grafana.py --grafana-url http://grafana:3000 \\
      --prometheus-url http://prometheus-operated.monitoring.svc:9090
  (or GRAFANA_USER / GRAFANA_PASSWORD for basic auth; --dry-run prints what would change)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import sys
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "k8s" / "grafana" / "dashboard.json"
DEFAULT_TIMEOUT_S = 10.0
# Fields Grafana adds or bumps on its side; ignored when comparing what we want with what is there.
_DS_COMPARED = ("name", "type", "access", "url", "isDefault", "jsonData")
_DASHBOARD_VOLATILE = ("id", "version")


@dataclass(frozen=True)
class Settings:
    prometheus_url: str
    datasource_uid: str = "sparse24-prometheus"
    datasource_name: str = "sparse24 Prometheus"
    folder_uid: str = "sparse24"
    folder_title: str = "sparse24"
    scrape_interval: str = "15s"   # matches the PodMonitor/ServiceMonitor interval


def desired_datasource(s: Settings) -> dict:
    return {"uid": s.datasource_uid, "name": s.datasource_name, "type": "prometheus", "access": "proxy",
            "url": s.prometheus_url, "isDefault": False,
            "jsonData": {"httpMethod": "POST", "timeInterval": s.scrape_interval}}


def desired_dashboard(dashboard: dict, s: Settings) -> dict:
    """The dashboard with its datasource variable defaulting to the provisioned datasource."""
    d = copy.deepcopy(dashboard)
    for var in (d.get("templating") or {}).get("list") or []:
        if var.get("type") == "datasource":
            var["current"] = {"text": s.datasource_name, "value": s.datasource_uid}
    for key in _DASHBOARD_VOLATILE:
        d.pop(key, None)
    return d


def _is_not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


def provision(api, dashboard: dict, s: Settings, dry_run: bool = False) -> list[str]:
    """Bring Grafana to the desired state; returns one line per object: created/updated/unchanged."""
    from grafana_client.client import GrafanaClientError
    report = []

    want = desired_datasource(s)
    try:
        have = api.datasource.get_datasource_by_uid(s.datasource_uid)
    except GrafanaClientError as e:
        if not _is_not_found(e):
            raise
        have = None
    if have is None:
        dry_run or api.datasource.create_datasource(want)
        report.append(f"datasource {s.datasource_uid}: created")
    elif any(have.get(k) != want[k] for k in _DS_COMPARED if k != "jsonData") or \
            any((have.get("jsonData") or {}).get(k) != v for k, v in want["jsonData"].items()):
        dry_run or api.datasource.update_datasource_by_uid(s.datasource_uid, {**have, **want})
        report.append(f"datasource {s.datasource_uid}: updated")
    else:
        report.append(f"datasource {s.datasource_uid}: unchanged")

    try:
        api.folder.get_folder(s.folder_uid)
        report.append(f"folder {s.folder_uid}: unchanged")
    except GrafanaClientError as e:
        if not _is_not_found(e):
            raise
        dry_run or api.folder.create_folder(s.folder_title, uid=s.folder_uid)
        report.append(f"folder {s.folder_uid}: created")

    want_db = desired_dashboard(dashboard, s)
    uid = want_db["uid"]
    try:
        current = api.dashboard.get_dashboard(uid)
    except GrafanaClientError as e:
        if not _is_not_found(e):
            raise
        current = None
    if current is not None:
        have_db = {k: v for k, v in current["dashboard"].items() if k not in _DASHBOARD_VOLATILE}
        if have_db == want_db and (current.get("meta") or {}).get("folderUid") == s.folder_uid:
            report.append(f"dashboard {uid}: unchanged")
            return report
    dry_run or api.dashboard.update_dashboard({
        "dashboard": {**want_db, "id": None}, "folderUid": s.folder_uid, "overwrite": True,
        "message": "provisioned by k8s/tools/provision_grafana.py"})
    report.append(f"dashboard {uid}: {'created' if current is None else 'updated'}")
    return report


def connect(url: str, timeout_s: float = DEFAULT_TIMEOUT_S):
    """GrafanaApi from GRAFANA_TOKEN, or GRAFANA_USER/GRAFANA_PASSWORD."""
    from grafana_client import GrafanaApi
    token = os.environ.get("GRAFANA_TOKEN")
    user, password = os.environ.get("GRAFANA_USER"), os.environ.get("GRAFANA_PASSWORD")
    if token:
        credential = token
    elif user and password:
        credential = (user, password)
    else:
        raise SystemExit("set GRAFANA_TOKEN (service account token) or GRAFANA_USER and GRAFANA_PASSWORD")
    return GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grafana-url", required=True, help="e.g. http://grafana.monitoring.svc:80")
    ap.add_argument("--prometheus-url", required=True, help="URL Grafana uses to reach Prometheus")
    ap.add_argument("--dashboard", type=pathlib.Path, default=DASHBOARD)
    ap.add_argument("--datasource-uid", default=Settings.datasource_uid)
    ap.add_argument("--folder-uid", default=Settings.folder_uid)
    ap.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="per HTTP call, seconds")
    ap.add_argument("--dry-run", action="store_true", help="read only; print what would change")
    args = ap.parse_args(argv)
    if not args.prometheus_url.startswith(("http://", "https://")):
        raise SystemExit(f"--prometheus-url {args.prometheus_url!r}: expected an http(s) URL")
    settings = Settings(prometheus_url=args.prometheus_url, datasource_uid=args.datasource_uid,
                        folder_uid=args.folder_uid)
    from grafana_client.client import GrafanaException
    api = connect(args.grafana_url, args.timeout_s)
    try:
        health = api.health.check() or {}
        print(f"grafana {health.get('version', '?')} at {args.grafana_url}", file=sys.stderr)
        for line in provision(api, json.loads(args.dashboard.read_text()), settings, dry_run=args.dry_run):
            print(line)
    except GrafanaException as e:
        print(f"error: grafana at {args.grafana_url} answered {e.status_code}: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:  # niquests' connection errors derive from OSError
        print(f"error: cannot reach grafana at {args.grafana_url}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
