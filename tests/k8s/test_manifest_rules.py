"""Deployment rules and the serveConfigV2 checks (Ray's ServeDeploySchema, our autoscaling bounds, the
app's own args model) reject deliberately broken manifests that every schema accepts."""
from __future__ import annotations

import copy
import pathlib

import pytest
import yaml


@pytest.fixture()
def objs(rendered):
    return copy.deepcopy(rendered["cpu-demo"])


def _rs(objs):
    return next(o for o in objs if o["kind"] == "RayService")


def _serve(objs) -> dict:
    return yaml.safe_load(_rs(objs)["spec"]["serveConfigV2"])


def _set_serve(objs, cfg: dict) -> None:
    _rs(objs)["spec"]["serveConfigV2"] = yaml.safe_dump(cfg, sort_keys=False)


def _model_deployment(cfg: dict) -> dict:
    return cfg["applications"][0]["args"]["models"][0]["deployment"]


def _rule_errors(vm, objs):
    assert vm.schema_errors(objs, "broken") == [], "the broken manifest must still be schema-valid"
    return vm.rule_errors(objs, "broken")


def test_rendered_cpu_demo_passes_the_rules(vm, objs):
    assert _rule_errors(vm, objs) == []


@pytest.mark.parametrize("strategy, expected", [("None", "not a zero-downtime"), ("NewClstr", "expected one of")])
def test_upgrade_strategy_must_be_zero_downtime(vm, objs, strategy, expected):
    _rs(objs)["spec"]["upgradeStrategy"]["type"] = strategy
    (err,) = _rule_errors(vm, objs)
    assert expected in err and strategy in err


def test_ray_version_must_match_the_pyproject_pin(vm, objs):
    _rs(objs)["spec"]["rayClusterConfig"]["rayVersion"] = "2.59.0"
    (err,) = _rule_errors(vm, objs)
    assert "2.59.0" in err and "2.60.0" in err


def test_node_autoscaler_must_be_on(vm, objs):
    _rs(objs)["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = False
    (err,) = _rule_errors(vm, objs)
    assert "enableInTreeAutoscaling" in err


def test_every_container_needs_probes_and_limits(vm, objs):
    c = _rs(objs)["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    del c["readinessProbe"]
    del c["resources"]["limits"]["memory"]
    errs = _rule_errors(vm, objs)
    assert len(errs) == 2
    assert any("readinessProbe missing" in e for e in errs) and any("limits.memory missing" in e for e in errs)


def test_serve_config_rejected_by_ray_serve_schema(vm, objs):
    cfg = _serve(objs)
    del cfg["applications"][0]["import_path"]
    _set_serve(objs, cfg)
    errs = _rule_errors(vm, objs)
    assert errs and all("ServeDeploySchema" in e for e in errs) and any("import_path" in e for e in errs)


def test_serve_config_must_listen_on_all_interfaces(vm, objs):
    cfg = _serve(objs)
    cfg["http_options"]["host"] = "127.0.0.1"
    _set_serve(objs, cfg)
    (err,) = _rule_errors(vm, objs)
    assert "0.0.0.0:8000" in err


@pytest.mark.parametrize("autoscaling, expected", [
    ({"min_replicas": 3, "max_replicas": 2}, "max_replicas (2) must be greater than or equal to min_replicas (3)"),
    ({"min_replicas": 0, "max_replicas": 2}, "min_replicas=0"),
    ({"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 500}, "above max_ongoing_requests"),
    ({"min_replicas": 1, "max_replicas": 2, "upscale_delay_s": 30, "downscale_delay_s": 5}, "flap"),
    ({"min_replicas": 1, "max_replicas": 2, "metrics_interval_s": 10, "look_back_period_s": 2}, "look_back_period_s"),
    ({"min_replicas": 1, "max_replicas": 2, "upscaling_factor": 50}, "upscaling_factor=50"),
    ({"min_replicas": 1, "max_replicas": 2, "initial_replicas": 5}, "initial_replicas (5)"),
    ({"min_replicas": 1, "max_replicas": 100}, "max_replicas=100: above 64"),
    ({"min_replicas": 1, "max_replicas": 2, "upscale_delay_s": 3600, "downscale_delay_s": 3600}, "upscale_delay_s=3600"),
    ({"min_replicas": 1, "max_replicas": "many"}, "max_replicas"),
    ({"min_replicas": 1, "max_replicas": 2, "policy": {"policy_fn": "x:y"}}, "unknown key(s) ['policy_fn']"),
    ({"min_replicas": 1, "max_replicas": 2, "policy": {"policy_function": "sparse24.serve_app.nope:Policy"}},
     "cannot import"),
])
def test_autoscaling_config_bounds(vm, objs, autoscaling, expected):
    cfg = _serve(objs)
    dep = _model_deployment(cfg)
    dep.pop("num_replicas", None)
    dep["autoscaling_config"] = autoscaling
    _set_serve(objs, cfg)
    errs = _rule_errors(vm, objs)
    assert any(expected in e for e in errs), errs


def test_autoscaling_config_under_ray_deployments_is_checked_too(vm, objs):
    cfg = _serve(objs)
    cfg["applications"][0]["deployments"] = [
        {"name": "OpenAIIngress", "autoscaling_config": {"min_replicas": 2, "max_replicas": 1}}]
    _set_serve(objs, cfg)
    errs = _rule_errors(vm, objs)
    assert any("deployments[OpenAIIngress].autoscaling_config" in e and "max_replicas (1)" in e for e in errs), errs


def test_app_args_are_checked_with_the_apps_own_config_model(vm, objs):
    cfg = _serve(objs)
    cfg["applications"][0]["args"]["models"][0]["engine"]["max_num_seq"] = 8   # misspelled
    _set_serve(objs, cfg)
    (err,) = _rule_errors(vm, objs)
    assert "max_num_seq" in err and "args" in err


def test_gpu_demand_must_fit_the_worker_groups(vm, objs):
    cfg = _serve(objs)
    dep = _model_deployment(cfg)
    dep["num_gpus"] = 1
    _set_serve(objs, cfg)   # cpu-demo workers have no nvidia.com/gpu
    per_replica, total = _rule_errors(vm, objs)
    assert "asks for 1 GPUs but the largest pod offers 0" in per_replica
    assert "up to 3 GPUs at max replicas" in total and "at most 0" in total


def test_replica_larger_than_any_pod_is_rejected(vm, objs):
    cfg = _serve(objs)
    _model_deployment(cfg)["num_cpus"] = 6   # worker pods have 4 CPUs
    _set_serve(objs, cfg)
    errs = _rule_errors(vm, objs)
    assert any("asks for 6 CPUs but the largest pod offers 4: it can never be scheduled" in e for e in errs), errs


def test_env_var_used_by_serve_config_must_be_set_on_workers(vm, objs):
    cfg = _serve(objs)
    cfg["applications"][0]["args"]["models"][0]["source"] = "${SPARSE24_MODEL_PATH}"
    _set_serve(objs, cfg)
    errs = _rule_errors(vm, objs)
    assert any("${SPARSE24_MODEL_PATH}" in e and "does not set it" in e for e in errs), errs


def test_monitor_must_select_a_deployed_target(vm, objs):
    sm = next(o for o in objs if o["kind"] == "ServiceMonitor")
    sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "serv"
    (err,) = _rule_errors(vm, objs)
    assert "matches no pod/service" in err


def test_scraping_twice_is_rejected(vm, objs, rendered):
    objs.append(copy.deepcopy(next(o for o in rendered["h100"] if o["kind"] == "PodMonitor")))
    (err,) = _rule_errors(vm, objs)
    assert "stored twice" in err


def test_empty_serve_config_is_rejected(vm, objs):
    _rs(objs)["spec"]["serveConfigV2"] = ""
    (err,) = _rule_errors(vm, objs)
    assert "serveConfigV2 is empty" in err


def test_our_policy_kwargs_are_validated_with_the_policys_config_model(vm, objs):
    pytest.importorskip("sparse24.serve_app.autoscaler.config", reason="autoscaler package not present")
    cfg = _serve(objs)
    dep = _model_deployment(cfg)
    dep.pop("num_replicas", None)
    dep["autoscaling_config"] = {"min_replicas": 1, "max_replicas": 2, "policy": {
        "policy_function": "sparse24.serve_app.autoscaler.policy:ItlSlaPolicy",
        "policy_kwargs": {"sla": {"itl_target_ms": -5}}}}
    _set_serve(objs, cfg)
    errs = _rule_errors(vm, objs)
    assert any("policy_kwargs.sla.itl_target_ms" in e for e in errs), errs
    dep["autoscaling_config"]["policy"]["policy_kwargs"] = {"sla": {"itl_target_ms": 50}}
    _set_serve(objs, cfg)
    assert _rule_errors(vm, objs) == []


def _gpu_serve_config(max_replicas: int) -> dict:
    """deploy/config.yaml turned into a GPU config the way deploy/h100.yaml is described (issue 6)."""
    cfg = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "deploy" / "config.yaml").read_text())
    cfg["proxy_location"], cfg["http_options"]["host"] = "EveryNode", "0.0.0.0"
    model = cfg["applications"][0]["args"]["models"][0]
    model["source"] = "${SPARSE24_MODEL}"
    model["engine"] = {"dtype": "bfloat16", "max_model_len": 8192, "max_num_seqs": 128, "gpu_memory_utilization": 0.9}
    dep = model["deployment"]
    dep.pop("num_replicas", None)
    dep.update(num_gpus=1, num_cpus=4, autoscaling_config={"min_replicas": 1, "max_replicas": max_replicas,
                                                            "upscale_delay_s": 5, "downscale_delay_s": 120})
    return cfg


@pytest.mark.parametrize("max_replicas, ok", [(8, True), (9, False)])
def test_h100_overlay_fits_gpu_replicas_into_its_worker_group(vm, rendered, max_replicas, ok):
    objs = copy.deepcopy(rendered["h100"])
    _set_serve(objs, _gpu_serve_config(max_replicas))
    errs = _rule_errors(vm, objs)
    if ok:
        assert errs == []
    else:
        (err,) = errs
        assert "up to 9 GPUs" in err and "at most 8" in err, errs


def test_env_var_used_by_serve_config_must_be_set_on_the_head_too(vm, rendered):
    # Serve expands ${VAR} while building the app in a 0-CPU task that usually lands on the head
    objs = copy.deepcopy(rendered["h100"])
    _set_serve(objs, _gpu_serve_config(8))
    head = _rs(objs)["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"] = [e for e in head["env"] if e["name"] != "SPARSE24_MODEL"]
    (err,) = _rule_errors(vm, objs)
    assert "${SPARSE24_MODEL}" in err and "headGroupSpec" in err
