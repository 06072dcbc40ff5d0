"""Fast checks without Ray or an engine: config files, config errors, request parsing, metrics relay filter."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparse24.serve_app.config import ConfigError, parse_app_config
from sparse24.serve_app.errors import ApiError
from sparse24.serve_app.prometheus_relay import filter_families
from sparse24.serve_app.requests import parse_body, parse_request, resolve_model

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("name", ["config.yaml", "ab.yaml", "h100.yaml", "h200.yaml", "h200_variants.yaml"])
def test_deploy_files_are_valid_serve_configs_with_valid_args(name, monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    for var in ("SPARSE24_MODEL", "SPARSE24_MODEL_BF16", "SPARSE24_MODEL_FP8", "SPARSE24_MODEL_SPARSE"):
        monkeypatch.setenv(var, f"/models/{var.lower()}")
    doc = yaml.safe_load((DEPLOY / name).read_text())
    ServeDeploySchema.model_validate(doc)
    for app in doc["applications"]:
        assert app["import_path"] == "sparse24.serve_app.app:build_app"
        cfg = parse_app_config(app["args"])
        for m in cfg.models:
            assert m.deployment.max_ongoing_requests > 5  # raised from Serve's default on purpose


def test_h200_variants_are_equal_colocated_engines_and_the_sweeps_address_them(monkeypatch):
    """Figs. 2/4 compare checkpoints, so the three apps may differ only in model, backend and route."""
    for var in ("SPARSE24_MODEL_BF16", "SPARSE24_MODEL_FP8", "SPARSE24_MODEL_SPARSE"):
        monkeypatch.setenv(var, f"/models/{var.lower()}")
    apps = yaml.safe_load((DEPLOY / "h200_variants.yaml").read_text())["applications"]
    cfgs = {a["route_prefix"]: parse_app_config(a["args"]) for a in apps}
    assert set(cfgs) == {"/bf16", "/fp8", "/sparse"}
    engines = {p: c.models[0].engine.model_dump() for p, c in cfgs.items()}
    assert engines["/bf16"] == engines["/fp8"] == engines["/sparse"]
    assert all(c.ingress.colocate_engine for c in cfgs.values())
    assert cfgs["/sparse"].models[0].deployment.env_vars == {"SPARSE24_BACKEND": "cutlass"}
    assert sum(c.models[0].deployment.num_gpus for c in cfgs.values()) <= 1.0
    served = {f"http://127.0.0.1:8000{p}": c.models[0].name for p, c in cfgs.items()}
    loadtest = DEPLOY.parent / "loadtest" / "configs"
    for sweep in ("h200_fig2.yaml", "h200_fig4.yaml"):
        for d in yaml.safe_load((loadtest / sweep).read_text())["deployments"]:
            assert served[d["base_url"]] == d["model"], (sweep, d)


def test_default_config_is_cpu_one_replica_sparse_tiny_model():
    args = yaml.safe_load((DEPLOY / "config.yaml").read_text())["applications"][0]["args"]
    (m,) = parse_app_config(args).models
    assert (m.source, m.deployment.num_gpus, m.deployment.num_replicas) == ("tiny-sparse24-fp8", 0, 1)


def test_h100_config_without_model_env_var_names_it(monkeypatch):
    monkeypatch.delenv("SPARSE24_MODEL", raising=False)
    args = yaml.safe_load((DEPLOY / "h100.yaml").read_text())["applications"][0]["args"]
    with pytest.raises(ConfigError, match="SPARSE24_MODEL"):
        parse_app_config(args)


@pytest.mark.parametrize("args,needle", [
    ({}, "args.models"),
    ({"models": []}, "args.models"),
    ({"models": [{"name": "a b", "source": "tiny-dense"}]}, "args.models.0.name = 'a b'"),
    ({"models": [{"name": "a", "source": "tiny-dense", "engine": {"max_num_seqs": 0}}]}, "max_num_seqs = 0"),
    ({"models": [{"name": "a", "source": "tiny-dense", "engine": {"maxlen": 3}}]}, "engine.maxlen"),
    ({"models": [{"name": "a", "source": "tiny-dense"}, {"name": "a", "source": "tiny-dense"}]}, "unique"),
    ({"models": [{"name": "a", "source": "tiny-dense", "admission": {"max_inflight": 100},
                  "deployment": {"max_ongoing_requests": 10}}]}, "max_ongoing_requests"),
    ({"models": [{"name": "a", "source": "tiny-dense"}], "ingress": {"port": 1}}, "ingress.port"),
])
def test_bad_config_fails_naming_the_field(args, needle):
    with pytest.raises(ConfigError) as info:
        parse_app_config(args)
    assert needle in str(info.value)


def test_parse_body_limits_and_shapes():
    assert parse_body(b'{"a": 1}', 100) == {"a": 1}
    for body, status in [(b"x" * 101, 413), (b"", 400), (b"{", 400), (b"[]", 400), (b"\xff", 400)]:
        with pytest.raises(ApiError) as info:
            parse_body(body, 100)
        assert info.value.status == status


def test_resolve_model_defaults_to_the_only_model_and_404s_unknown():
    assert resolve_model({}, ["tiny"]) == "tiny"
    with pytest.raises(ApiError) as info:
        resolve_model({"model": "x"}, ["tiny", "tiny-dense"])
    assert info.value.status == 404 and info.value.body()["error"]["type"] == "NotFoundError"
    with pytest.raises(ApiError) as info:
        resolve_model({}, ["a", "b"])
    assert info.value.status == 400


def test_parse_request_uses_vllm_protocol_and_reports_the_field():
    req = parse_request("completion", {"model": "tiny", "prompt": "hi", "max_tokens": 3})
    assert req.max_tokens == 3
    with pytest.raises(ApiError) as info:
        parse_request("completion", {"model": "tiny", "prompt": "hi", "max_tokens": "ten"})
    assert info.value.status == 400 and info.value.param == "max_tokens"
    with pytest.raises(ApiError):
        parse_request("chat", {"model": "tiny", "messages": []})


def test_metrics_relay_keeps_only_our_families_once():
    text = "\n".join([
        "# HELP ray_vllm_x doc", "# TYPE ray_vllm_x histogram", 'ray_vllm_x_bucket{le="0.01"} 3',
        "# HELP ray_other doc", "ray_other 1", "ray_sparse24_request_errors_total 2",
    ])
    seen: set[str] = set()
    first = filter_families(text, ("ray_vllm_", "ray_sparse24_"), seen)
    assert first == ["# HELP ray_vllm_x doc", "# TYPE ray_vllm_x histogram", 'ray_vllm_x_bucket{le="0.01"} 3',
                     "ray_sparse24_request_errors_total 2"]
    assert filter_families(text, ("ray_vllm_",), seen) == ['ray_vllm_x_bucket{le="0.01"} 3']
