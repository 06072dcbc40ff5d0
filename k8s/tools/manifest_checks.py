"""Deployment rules for rendered manifests that no schema expresses (pure: objects in, errors out).

Schemas (k8s/schemas/) catch wrong types, enums and misspelled fields; these catch a valid-but-wrong
deployment: no zero-downtime upgrade, no node autoscaler, a container without probes or limits, a
Ray image that differs from our pinned Ray, a serveConfigV2 that Ray Serve would reject or whose
replicas cannot fit the worker groups.
"""
from __future__ import annotations

import pathlib
import re

import serve_config_checks as scc
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
# KubeRay v1.7 accepts these upgradeStrategy.type values (the CRD has no enum; the operator checks).
UPGRADE_TYPES = {"NewCluster", "NewClusterWithIncrementalUpgrade", "None"}
ZERO_DOWNTIME_TYPES = {"NewCluster", "NewClusterWithIncrementalUpgrade"}
GPU_RESOURCE = "nvidia.com/gpu"
SERVE_PORT = 8000


def pinned_ray_version(pyproject: pathlib.Path = REPO / "pyproject.toml") -> str:
    m = re.search(r'"ray\[serve\]==([0-9.]+)"', pyproject.read_text())
    if not m:
        raise ValueError(f"{pyproject}: no ray[serve]==X pin found")
    return m.group(1)


def _pod_specs(rs: dict):
    rc = rs["spec"]["rayClusterConfig"]
    yield "headGroupSpec", rc["headGroupSpec"], None
    for g in rc.get("workerGroupSpecs") or []:
        yield f"workerGroupSpecs[{g.get('groupName')}]", g, g


def container_env(c: dict, configmaps: dict[str, dict]) -> dict[str, str]:
    """The environment a container gets, resolving ConfigMaps rendered in the same overlay
    (values from Secrets or the downward API become a placeholder)."""
    env: dict[str, str] = {}
    for src in c.get("envFrom") or []:
        ref = (src.get("configMapRef") or {}).get("name")
        env.update({f"{src.get('prefix', '')}{k}": v for k, v in (configmaps.get(ref) or {}).items()})
    for e in c.get("env") or []:
        ref = ((e.get("valueFrom") or {}).get("configMapKeyRef")) or {}
        env[e["name"]] = e.get("value") if "value" in e else \
            (configmaps.get(ref.get("name")) or {}).get(ref.get("key"), "<from-cluster>")
    return env


def rayservice_errors(rs: dict, ray_version: str, configmaps: dict[str, dict] | None = None) -> list[str]:
    """Rules for one RayService object (see module doc); `configmaps`: name -> data of the overlay."""
    name = f"RayService/{rs['metadata']['name']}"
    spec, errors = rs["spec"], []
    rc = spec["rayClusterConfig"]
    strategy = (spec.get("upgradeStrategy") or {}).get("type")
    if strategy not in UPGRADE_TYPES:
        errors.append(f"{name}: spec.upgradeStrategy.type={strategy!r}: expected one of {sorted(UPGRADE_TYPES)}")
    elif strategy not in ZERO_DOWNTIME_TYPES:
        errors.append(f"{name}: spec.upgradeStrategy.type={strategy!r} is not a zero-downtime strategy")
    if rc.get("rayVersion") != ray_version:
        errors.append(f"{name}: rayVersion={rc.get('rayVersion')!r} but pyproject pins ray[serve]=={ray_version}")
    if rc.get("enableInTreeAutoscaling") is not True:
        errors.append(f"{name}: enableInTreeAutoscaling must be true (Ray's node autoscaler adds worker pods)")
    if not rc.get("workerGroupSpecs"):
        errors.append(f"{name}: no workerGroupSpecs: replicas have nowhere to run")
    capacity = {"CPU": 0.0, "GPU": 0.0, "CPU_per_pod": 0.0, "GPU_per_pod": 0.0}
    worker_envs = []
    for where, group, worker in _pod_specs(rs):
        pod = group["template"]["spec"]
        for c in pod["containers"]:
            at = f"{name}: {where}.containers[{c['name']}]"
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        errors.append(f"{at}: resources.{kind}.{r} missing")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    errors.append(f"{at}: {probe} missing")
            # the head too: Serve builds the app (args, ${VAR} expansion) in a 0-CPU task, usually there
            worker_envs.append((f"{where}.containers[{c['name']}]", container_env(c, configmaps or {})))
            offers = {"CPU": _ray_cpus(group, c), "GPU": float((res.get("limits") or {}).get(GPU_RESOURCE, 0))}
            count = int(worker.get("maxReplicas", 0)) if worker is not None else 1
            for r in ("CPU", "GPU"):
                capacity[r] += offers[r] * count
                capacity[f"{r}_per_pod"] = max(capacity[f"{r}_per_pod"], offers[r])
        if "metrics" not in {p.get("name") for c in pod["containers"] for p in c.get("ports") or []}:
            errors.append(f"{name}: {where}: no container port named 'metrics' (the PodMonitor scrapes it)")
    for g in rc.get("workerGroupSpecs") or []:
        if g.get("minReplicas", 0) > g.get("maxReplicas", 0):
            errors.append(f"{name}: workerGroupSpecs[{g.get('groupName')}] minReplicas={g.get('minReplicas')} "
                          f"> maxReplicas={g.get('maxReplicas')}")
    errors += serve_config_v2_errors(name, spec.get("serveConfigV2"), capacity, worker_envs)
    return errors


def _ray_cpus(group: dict, container: dict) -> float:
    """Logical CPUs Ray advertises for a pod: rayStartParams num-cpus, else the container's CPU limit."""
    explicit = (group.get("rayStartParams") or {}).get("num-cpus")
    if explicit is not None:
        return float(explicit)
    q = str(((container.get("resources") or {}).get("limits") or {}).get("cpu", "0"))
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def serve_config_v2_errors(name: str, text, capacity: dict[str, float],
                           worker_envs: list[tuple[str, dict[str, str]]] = ()) -> list[str]:
    """serveConfigV2: Ray's ServeDeploySchema, our autoscaling bounds, the app's own args model with
    the workers' environment, and GPU fit."""
    if not isinstance(text, str) or not text.strip():
        return [f"{name}: spec.serveConfigV2 is empty (run k8s/tools/render_serve_config.py)"]
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return [f"{name}: spec.serveConfigV2 is not YAML: {e}"]
    if not isinstance(cfg, dict):
        return [f"{name}: spec.serveConfigV2 must be a mapping, got {type(cfg).__name__}"]
    errors = [f"{name}: serveConfigV2: {e}" for e in scc.serve_schema_errors(cfg)]
    if errors:
        return errors
    errors += [f"{name}: serveConfigV2: {e}" for e in scc.autoscaling_errors(cfg)]
    http = cfg.get("http_options") or {}
    if http.get("host") not in ("0.0.0.0", "::") or int(http.get("port", SERVE_PORT)) != SERVE_PORT:
        errors.append(f"{name}: serveConfigV2.http_options must listen on 0.0.0.0:{SERVE_PORT} "
                      f"(the serve Service targets it), got {http}")
    env: dict[str, str] = {}
    for var, has_default in scc.env_refs(text).items():
        missing = [where for where, e in worker_envs if var not in e]
        if missing and not has_default:
            errors.append(f"{name}: serveConfigV2 uses ${{{var}}} but {', '.join(missing)} does not set it")
        env[var] = next((e[var] for _, e in worker_envs if var in e), "/nonexistent")
    errors += [f"{name}: serveConfigV2: {e}" for e in scc.app_args_errors(cfg, env)]
    need = scc.replica_demand(cfg)
    for r, unit in (("CPU", "CPUs"), ("GPU", "GPUs")):
        if need[f"{r}_per_replica"] > capacity[f"{r}_per_pod"]:
            errors.append(f"{name}: a replica asks for {need[f'{r}_per_replica']:g} {unit} but the largest pod offers "
                          f"{capacity[f'{r}_per_pod']:g}: it can never be scheduled")
        if need[r] > capacity[r]:
            errors.append(f"{name}: serveConfigV2 asks for up to {need[r]:g} {unit} at max replicas but the pods "
                          f"offer at most {capacity[r]:g} (per-pod {unit} x worker maxReplicas, plus the head)")
    return errors


def monitor_errors(objs: list[dict]) -> list[str]:
    """Every PodMonitor/ServiceMonitor must select something this overlay deploys, on a named port;
    Services must select pods; and one overlay scrapes the app's series one way only (the /metrics
    route relays Ray's export, so a PodMonitor plus a ServiceMonitor would store every series twice)."""
    errors = []
    pods, services = [], []
    for o in objs:
        if o["kind"] == "RayService":
            for _, g, _ in _pod_specs(o):
                pods.append(((g["template"].get("metadata") or {}).get("labels") or {},
                             {p.get("name") for c in g["template"]["spec"]["containers"] for p in c.get("ports") or []}))
            svc = o["spec"].get("serveService") or {}
            services.append((((svc.get("metadata") or {}).get("labels") or {}),
                             {p.get("name") for p in (svc.get("spec") or {}).get("ports") or []}))
    for o in objs:
        if o["kind"] == "Service":
            sel = o["spec"].get("selector") or {}
            if not any(sel and all(labels.get(k) == v for k, v in sel.items()) for labels, _ in pods):
                errors.append(f"Service/{o['metadata']['name']}: selector {sel} matches no Ray pod")
            services.append((o["metadata"].get("labels") or {}, {p.get("name") for p in o["spec"].get("ports") or []}))
    kinds = set()
    for o in objs:
        if o["kind"] not in ("PodMonitor", "ServiceMonitor"):
            continue
        kinds.add(o["kind"])
        sel = (o["spec"].get("selector") or {}).get("matchLabels") or {}
        targets = pods if o["kind"] == "PodMonitor" else services
        endpoints = o["spec"].get("podMetricsEndpoints") or o["spec"].get("endpoints") or []
        matched = [ports for labels, ports in targets if sel and all(labels.get(k) == v for k, v in sel.items())]
        at = f"{o['kind']}/{o['metadata']['name']}"
        if not matched:
            errors.append(f"{at}: selector {sel} matches no pod/service in this overlay")
        for ep in endpoints:
            if matched and not any(ep.get("port") in ports for ports in matched):
                errors.append(f"{at}: endpoint port {ep.get('port')!r} not exposed by the selected targets")
    if len(kinds) > 1:
        errors.append("both a PodMonitor and a ServiceMonitor scrape the app: every series would be stored twice")
    if not kinds:
        errors.append("no PodMonitor or ServiceMonitor: nothing scrapes the app")
    return errors
