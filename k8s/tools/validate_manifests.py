"""Render every kustomize overlay and validate each object offline.

1. Render: `kustomize build` if a kustomize binary is on PATH, else `kubectl kustomize` (kubectl
   v1.32 embeds kustomize v5.5; it renders without any cluster). The kubectl in our machine image
   is used in CI.
2. Schema: each object against a vendored JSON schema (k8s/schemas/: KubeRay v1.7.0 RayService CRD,
   prometheus-operator v0.93.0 PodMonitor/ServiceMonitor CRDs, Kubernetes v1.32 built-ins) with
   `check-jsonschema` (or `--engine jsonschema`, the same library in process). An object of a kind
   without a vendored schema is an error, never a pass.
3. Rules: manifest_checks.py (upgrade strategy, autoscaler, probes/limits, Ray pin, monitors) and
   the embedded serveConfigV2 through Ray Serve's ServeDeploySchema plus our autoscaling bounds.

Usage:
  python k8s/tools/validate_manifests.py [OVERLAY_DIR ...]   # default: every k8s/overlays/*
  python k8s/tools/validate_manifests.py --rendered FILE.yaml  # validate an already rendered stream
Exit status 1 with one line per problem.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import manifest_checks
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "k8s" / "schemas"
OVERLAYS = REPO / "k8s" / "overlays"
RENDER_TIMEOUT_S = 60
# (apiVersion, kind) -> vendored schema file (see k8s/schemas/SOURCES.md)
SCHEMA_FILES = {
    ("ray.io/v1", "RayService"): "rayservice-ray.io-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaim-v1.json",
    ("batch/v1", "Job"): "job-batch-v1.json",
    ("v1", "Service"): "service-v1.json",
}


def renderer() -> list[str]:
    """The kustomize command line to use (argv prefix taking a directory)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise RuntimeError("neither `kustomize` nor `kubectl` is on PATH: install kubectl (it embeds kustomize)")


def render(overlay: pathlib.Path) -> list[dict]:
    """Objects of `kustomize build overlay`."""
    proc = subprocess.run(renderer() + [str(overlay)], capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kustomize build {overlay} failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def schema_errors(objs: list[dict], label: str, engine: str = "jsonschema") -> list[str]:
    """Each object against its vendored schema; unknown kinds are errors.

    engine "jsonschema": in process, one compiled validator per schema (fast; what tests use);
    engine "check-jsonschema": the check-jsonschema CLI per schema (same library underneath; CI runs
    it once per overlay so the vendored schemas are known to work with the CLI people will use)."""
    errors, groups = [], {}
    for o in objs:
        key = (o.get("apiVersion"), o.get("kind"))
        name = (o.get("metadata") or {}).get("name", "?")
        if key not in SCHEMA_FILES:
            errors.append(f"{label}: {key[1]}/{name} ({key[0]}): no vendored schema; add one to k8s/schemas/")
            continue
        groups.setdefault(SCHEMA_FILES[key], []).append((f"{key[1]}/{name}", o))
    for schema, items in sorted(groups.items()):
        if engine == "check-jsonschema":
            errors += _check_jsonschema_cli(schema, items, label)
        else:
            validator = _validator(schema)
            for where, o in items:
                for err in sorted(validator.iter_errors(o), key=lambda e: list(e.absolute_path)):
                    errors.append(f"{label}: {where}::{err.json_path}: {err.message}")
    return errors


_VALIDATORS: dict[str, object] = {}


def _validator(schema: str):
    import jsonschema
    if schema not in _VALIDATORS:
        doc = json.loads((SCHEMAS / schema).read_text())
        cls = jsonschema.validators.validator_for(doc)
        _VALIDATORS[schema] = cls(doc, format_checker=cls.FORMAT_CHECKER)
    return _VALIDATORS[schema]


def _check_jsonschema_cli(schema: str, items: list[tuple[str, dict]], label: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, (where, o) in enumerate(items):
            path = pathlib.Path(tmp) / f"{where.replace('/', '__')}.json"
            path.write_text(json.dumps(o))
            files.append(str(path))
        proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMAS / schema), *files],
                              capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False)
        if proc.returncode == 0:
            return []
        lines = [ln.strip() for ln in proc.stdout.splitlines() if "::" in ln] or [proc.stdout + proc.stderr]
        return [f"{label}: {ln.replace(tmp + '/', '').replace('__', '/').replace('.json::', '::')}" for ln in lines]


def rule_errors(objs: list[dict], label: str) -> list[str]:
    ray_version = manifest_checks.pinned_ray_version()
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in objs if o.get("kind") == "ConfigMap"}
    errors = []
    for o in objs:
        if o.get("kind") == "RayService":
            errors += manifest_checks.rayservice_errors(o, ray_version, configmaps)
    errors += manifest_checks.monitor_errors(objs)
    return [f"{label}: {e}" for e in errors]


def validate_objects(objs: list[dict], label: str, engine: str = "jsonschema") -> list[str]:
    errors = schema_errors(objs, label, engine)
    return errors or rule_errors(objs, label)  # rules assume schema-valid objects


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overlays", nargs="*", type=pathlib.Path)
    ap.add_argument("--rendered", type=pathlib.Path, help="a rendered multi-document YAML file instead")
    ap.add_argument("--engine", choices=["check-jsonschema", "jsonschema"], default="check-jsonschema",
                    help="schema validator (default: the check-jsonschema CLI)")
    args = ap.parse_args(argv)
    errors = []
    if args.rendered:
        errors += validate_objects([d for d in yaml.safe_load_all(args.rendered.read_text()) if d], str(args.rendered),
                                   args.engine)
    else:
        targets = args.overlays or sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())
        for overlay in targets:
            objs = render(overlay)
            found = validate_objects(objs, overlay.name, args.engine)
            print(f"{overlay.name}: {len(objs)} objects, {'OK' if not found else f'{len(found)} problem(s)'}",
                  file=sys.stderr)
            errors += found
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
