"""Vendor the JSON schemas the offline manifest validator needs (run by hand when a pin moves).

Two sources, both turned into standalone draft-07 JSON schemas under k8s/schemas/ with descriptions
stripped (they are >80 % of the bytes and carry no validation):

* CRDs (KubeRay RayService, prometheus-operator PodMonitor/ServiceMonitor): the `openAPIV3Schema` of
  one served version is converted from Kubernetes' structural-schema dialect to JSON Schema:
  - objects with `properties` get `additionalProperties: false` (the API server silently prunes
    unknown fields, so a misspelled field would otherwise deploy as a no-op);
  - `x-kubernetes-int-or-string` becomes integer-or-string, `nullable` adds null;
  - `required` entries whose property has a `default` are dropped (the API server fills them in);
  - every `metadata` property may be null (kustomize and `kubectl create --dry-run` emit
    `creationTimestamp: null` / empty templates);
  - the top-level `metadata` is replaced by a strict ObjectMeta subset (name required, DNS-1123).
  CEL rules (`x-kubernetes-validations`) are not evaluated; checks.py covers the ones we rely on.
* Built-in kinds (ConfigMap, PersistentVolumeClaim, Job): taken from the `kubernetes-validate`
  package's `*-local-strict` schemas (generated from the Kubernetes OpenAPI spec) with the `$ref`s
  into `_definitions.json` pruned to what the kind reaches.

Usage:
  python k8s/tools/vendor_schemas.py crd CRD.yaml OUT.json [--version v1] [--source TEXT]
  python k8s/tools/vendor_schemas.py builtin K8S_VERSION KIND_FILE OUT.json   # e.g. v1.32.0 job-batch-v1
"""
from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys

import yaml

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": DNS1123_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "creationTimestamp": {"type": ["string", "null"]},
    },
}

_DROP_KEYS = {"description", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
              "x-kubernetes-map-type", "x-kubernetes-validations", "x-kubernetes-embedded-resource"}


def _add_null(node: dict) -> dict:
    t = node.get("type")
    if isinstance(t, str):
        node["type"] = [t, "null"]
    elif isinstance(t, list) and "null" not in t:
        node["type"] = t + ["null"]
    elif t is None:
        node = {"anyOf": [node, {"type": "null"}]}
    return node


def convert_structural(node, *, path: str = "") -> object:
    """Return a JSON-Schema copy of one Kubernetes structural-schema node (see module doc)."""
    if isinstance(node, list):
        return [convert_structural(n, path=path) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "properties":
            out[key] = {name: convert_structural(sub, path=f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = convert_structural(value, path=path + "[]")
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert_structural(v, path=path) for v in value]
        elif key in ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "nullable"):
            continue
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if "properties" in out and not node.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if "required" in out and "properties" in out:
        kept = [r for r in out["required"] if "default" not in out["properties"].get(r, {})]
        if kept:
            out["required"] = kept
        else:
            out.pop("required")
    if "properties" in out and "metadata" in out["properties"]:
        out["properties"]["metadata"] = _add_null(out["properties"]["metadata"])
    if node.get("nullable"):
        out = _add_null(out)
    return out


def crd_to_json_schema(crd: dict, version: str, source: str) -> dict:
    """JSON schema for one served version of a CRD, top-level ObjectMeta made strict."""
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions:
        raise SystemExit(f"CRD {crd['metadata']['name']} has no version {version!r}; has {sorted(versions)}")
    schema = convert_structural(versions[version]["schema"]["openAPIV3Schema"])
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema["properties"]["apiVersion"] = {"const": f"{group}/{version}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = OBJECT_META
    schema["properties"].pop("status", None)  # never part of a manifest
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": f"{kind} {group}/{version}",
            "$comment": f"generated by k8s/tools/vendor_schemas.py from {source}", **schema}


def _strip_descriptions(node):
    if isinstance(node, dict):
        return {k: _strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def builtin_schema(k8s_version: str, kind_file: str) -> dict:
    """Standalone schema for a built-in kind from kubernetes-validate's strict schemas."""
    import kubernetes_validate  # only needed when re-vendoring
    root = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"{k8s_version}-local-strict"
    top = json.loads((root / f"{kind_file}.json").read_text())
    defs = json.loads((root / "_definitions.json").read_text())["$defs"]
    reached: dict[str, dict] = {}

    def visit(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                node["$ref"] = f"#/definitions/{name}"
                if name not in reached:
                    reached[name] = copy.deepcopy(defs[name])
                    visit(reached[name])
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(top)
    top = _strip_descriptions(top)
    top["properties"]["metadata"] = OBJECT_META
    top["required"] = sorted(set(top.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return {"$schema": "http://json-schema.org/draft-07/schema#",
            "$comment": f"generated by k8s/tools/vendor_schemas.py from kubernetes-validate {k8s_version}-local-strict/{kind_file}",
            **top, "definitions": _strip_descriptions(reached)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("crd")
    c.add_argument("crd_yaml")
    c.add_argument("out")
    c.add_argument("--version", default="v1")
    c.add_argument("--source", default=None, help="provenance written into $comment (repo@tag:path)")
    b = sub.add_parser("builtin")
    b.add_argument("k8s_version")
    b.add_argument("kind_file")
    b.add_argument("out")
    args = ap.parse_args(argv)
    if args.cmd == "crd":
        crd = yaml.safe_load(pathlib.Path(args.crd_yaml).read_text())
        schema = crd_to_json_schema(crd, args.version, args.source or args.crd_yaml)
    else:
        schema = builtin_schema(args.k8s_version, args.kind_file)
    pathlib.Path(args.out).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {args.out} ({pathlib.Path(args.out).stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
