"""Every overlay renders with kustomize and validates clean; generated files do not drift."""
from __future__ import annotations

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
OVERLAYS = REPO / "k8s" / "overlays"


def test_renderer_is_available(vm):
    # CI must really render: kubectl (kustomize v5 inside) ships in our machine image.
    assert vm.renderer()[0] in ("kustomize", "kubectl")


@pytest.mark.parametrize("overlay", ["cpu-demo", "h100"])
def test_overlay_renders_and_validates_clean(rendered, vm, tool, overlay):
    objs = rendered[overlay]
    kinds = sorted(o["kind"] for o in objs)
    assert "RayService" in kinds and "ConfigMap" in kinds
    assert vm.schema_errors(objs, overlay, engine="check-jsonschema") == []
    rsc = tool("render_serve_config")
    source = REPO / rsc.load_overrides(OVERLAYS / overlay)["source"]
    if not source.is_file():
        pytest.skip(f"{source.relative_to(REPO)} not committed yet (serving issue): schemas checked, rules not")
    assert vm.rule_errors(objs, overlay) == []


def test_serve_config_patches_are_generated_from_deploy_configs(tool):
    rsc = tool("render_serve_config")
    checked = 0
    for overlay in rsc.overlays():
        source = REPO / rsc.load_overrides(overlay)["source"]
        if not source.is_file():
            continue  # reported by test_overlay_renders_and_validates_clean
        checked += 1
        committed = (overlay / rsc.PATCH_NAME).read_text()
        assert committed == rsc.render_patch(overlay), \
            f"{overlay.name}: stale serveConfigV2, run python k8s/tools/render_serve_config.py"
    assert checked >= 1


def test_rendered_serve_config_keeps_the_deploy_file_content(tool):
    import yaml
    rsc = tool("render_serve_config")
    overlay = OVERLAYS / "cpu-demo"
    cfg, source = rsc.build_serve_config(overlay)
    original = yaml.safe_load(source.read_text())
    model, orig_model = cfg["applications"][0]["args"]["models"][0], original["applications"][0]["args"]["models"][0]
    assert model["deployment"]["num_cpus"] == 3 != orig_model["deployment"]["num_cpus"]   # the one override
    model["deployment"]["num_cpus"] = orig_model["deployment"]["num_cpus"]
    assert cfg["applications"][0]["args"] == original["applications"][0]["args"]
    assert cfg["http_options"]["host"] == "0.0.0.0"
    assert cfg["http_options"].get("request_timeout_s") == original["http_options"].get("request_timeout_s")


def test_deep_merge_merges_named_lists_by_name(tool):
    rsc = tool("render_serve_config")
    base = {"a": [{"name": "x", "v": 1, "keep": True}, {"name": "y", "v": 2}], "b": {"c": 1, "d": 2}}
    out = rsc.deep_merge(base, {"a": [{"name": "x", "v": 9}, {"name": "z"}], "b": {"c": 5}})
    assert out == {"a": [{"name": "x", "v": 9, "keep": True}, {"name": "y", "v": 2}, {"name": "z"}],
                   "b": {"c": 5, "d": 2}}
    assert base["a"][0]["v"] == 1   # inputs untouched


def test_h100_workers_request_one_gpu_each_on_h100_nodes(rendered):
    rs = next(o for o in rendered["h100"] if o["kind"] == "RayService")
    (group,) = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    pod = group["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "H100" in pod["nodeSelector"]["nvidia.com/gpu.product"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True and "/dev/shm" in mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "sparse24-models"


def test_dashboard_json_is_built_by_its_generator(tool):
    bd = tool("build_dashboard")
    assert bd.OUT.read_text() == bd.render(), "stale dashboard.json, run python k8s/tools/build_dashboard.py"


def test_dashboard_configmap_carries_the_dashboard(rendered, tool):
    import json
    bd = tool("build_dashboard")
    for objs in rendered.values():
        cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "sparse24-grafana-dashboard")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"]["sparse24-llm.json"]) == bd.build()
