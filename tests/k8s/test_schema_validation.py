"""The schema validator (check-jsonschema + vendored KubeRay / prometheus-operator / Kubernetes schemas)
rejects deliberately broken manifests, and accepts what kustomize legitimately emits."""
from __future__ import annotations

import copy

import pytest


@pytest.fixture()
def objs(rendered):
    return copy.deepcopy(rendered["h100"])


def _one(objs, kind):
    return next(o for o in objs if o["kind"] == kind)


def _errors(vm, objs):
    return vm.schema_errors(objs, "broken")


@pytest.mark.parametrize("engine", ["jsonschema", "check-jsonschema"])
def test_misspelled_rayservice_field_is_rejected(vm, objs, engine):
    g = _one(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    g["maxReplica"] = g.pop("maxReplicas")
    errs = vm.schema_errors([_one(objs, "RayService")], "broken", engine=engine)
    assert len(errs) == 1 and "maxReplica" in errs[0] and "RayService/sparse24-llm" in errs[0]


def test_wrong_enum_in_rayservice_is_rejected(vm, objs):
    _one(objs, "RayService")["spec"]["rayClusterConfig"]["autoscalerOptions"]["upscalingMode"] = "Fast"
    errs = _errors(vm, objs)
    assert len(errs) == 1 and "Fast" in errs[0]


def test_wrong_type_inside_embedded_pod_template_is_rejected(vm, objs):
    c = _one(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    c["ports"][0]["containerPort"] = "8000"
    errs = _errors(vm, objs)
    assert len(errs) == 1 and "containerPort" in errs[0]


def test_bad_object_name_is_rejected(vm, objs):
    _one(objs, "RayService")["metadata"]["name"] = "Sparse24_LLM"
    assert any("Sparse24_LLM" in e for e in _errors(vm, objs))


def test_misspelled_podmonitor_field_is_rejected(vm, objs):
    pm = _one(objs, "PodMonitor")
    pm["spec"]["podMetricEndpoints"] = pm["spec"].pop("podMetricsEndpoints")
    errs = _errors(vm, objs)
    assert len(errs) == 1 and "podMetricEndpoints" in errs[0]


def test_builtin_kinds_are_checked_too(vm, objs):
    _one(objs, "PersistentVolumeClaim")["spec"]["accessModes"] = "ReadWriteMany"   # must be a list
    _one(objs, "Job")["spec"]["template"]["spec"]["restartPolicy"] = 3
    errs = _errors(vm, objs)
    assert len(errs) == 2
    assert any("PersistentVolumeClaim" in e for e in errs) and any("Job" in e for e in errs)


def test_kind_without_vendored_schema_is_an_error_not_a_pass(vm, objs):
    objs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {}})
    errs = _errors(vm, objs)
    assert len(errs) == 1 and "no vendored schema" in errs[0]


def test_null_metadata_and_defaulted_required_fields_are_accepted(vm, objs):
    rs = _one(objs, "RayService")
    rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"] = None   # kustomize may emit this
    rs["metadata"]["creationTimestamp"] = None
    assert _errors(vm, objs) == []


def test_crd_conversion_drops_required_for_defaulted_fields_and_maps_int_or_string(tool):
    v = tool("vendor_schemas")
    node = {"type": "object", "required": ["a", "b"],
            "properties": {"a": {"type": "integer", "default": 1}, "b": {"type": "string"},
                           "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                           "metadata": {"type": "object"}}}
    out = v.convert_structural(node)
    assert out["required"] == ["b"]
    assert out["additionalProperties"] is False
    assert out["properties"]["q"]["type"] == ["integer", "string"]
    assert out["properties"]["metadata"]["type"] == ["object", "null"]
