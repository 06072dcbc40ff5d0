"""Capacity curves read two ways (seed Figs. 2 and 4) and the capacity profile the autoscaler reads.

* Fixed SLA: the highest QPS whose p-th percentile ITL stays within the SLA, linearly interpolated between
  the last passing and the first failing measured point; flagged when it is only a lower bound (every point
  passed: "extrapolated"), when even the lowest point fails ("below_range"), when the first failing point
  failed by saturation rather than latency ("saturation": the last passing QPS is reported), and when
  fewer than two points passed ("too_few_points").
* Fixed QPS: each deployment's ITL interpolated at given QPS values and its ratio to a baseline deployment.
* Capacity profiles: per deployment, the autoscaler's `CapacityProfile` (serve_app/autoscaler/profile.py):
  one pydantic model, built here and read there, so the writer cannot drift from the reader.
Points are dicts from `metrics.summarize_point` plus `deployment`, `profile`, `model`, `replicas`,
`prompt_tokens`, `output_tokens` (added by the sweep).
"""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from ..serve_app.autoscaler.profile import CapacityPoint, CapacityProfile, WorkloadCapacity


class CapacityEstimate(BaseModel):
    max_qps: float = Field(ge=0)  # requests/s within the SLA (a lower bound when status is "extrapolated")
    status: str  # interpolated | extrapolated | below_range | saturation
    passing_points: int
    too_few_points: bool


def _sorted(points: list[dict]) -> list[dict]:
    return sorted(points, key=lambda p: p["target_qps"])


def max_qps_at_sla(points: list[dict], metric: str, sla_ms: float) -> CapacityEstimate:
    """Highest QPS with points[metric] <= sla_ms (a point must also be steady to pass)."""
    if not points:
        raise ValueError("no measured points")
    pts = _sorted(points)
    passing = [p[metric] <= sla_ms and p.get("steady", True) for p in pts]
    n_pass = sum(passing)
    first_fail = passing.index(False) if False in passing else None
    if first_fail is None:
        est, status = pts[-1]["target_qps"], "extrapolated"
    elif first_fail == 0:
        est, status = 0.0, "below_range"
    else:
        lo, hi = pts[first_fail - 1], pts[first_fail]
        if hi[metric] > sla_ms and hi[metric] > lo[metric]:
            frac = (sla_ms - lo[metric]) / (hi[metric] - lo[metric])
            est = lo["target_qps"] + frac * (hi["target_qps"] - lo["target_qps"])
            status = "interpolated"
        else:  # failed by saturation/errors while latency still looked fine: trust only the passing point
            est, status = lo["target_qps"], "saturation"
    return CapacityEstimate(max_qps=float(est), status=status, passing_points=n_pass,
                            too_few_points=n_pass < 2)


def value_at_qps(points: list[dict], metric: str, qps: float) -> float | None:
    """points[metric] linearly interpolated at qps; None outside the measured QPS range."""
    pts = _sorted(points)
    xs = [p["target_qps"] for p in pts]
    if not pts or qps < xs[0] or qps > xs[-1]:
        return None
    return float(np.interp(qps, xs, [p[metric] for p in pts]))


def group(points: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Points keyed by (deployment, profile)."""
    out: dict[tuple[str, str], list[dict]] = {}
    for p in points:
        out.setdefault((p["deployment"], p["profile"]), []).append(p)
    return out


def fixed_sla_table(points: list[dict], metric: str, sla_ms: float) -> list[dict]:
    """Rows: deployment, profile, max_qps, status, passing_points, too_few_points, per_replica_qps."""
    rows = []
    for (dep, prof), pts in sorted(group(points).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        est = max_qps_at_sla(pts, metric, sla_ms)
        replicas = max(1, int(pts[0].get("replicas", 1)))
        rows.append(dict(deployment=dep, profile=prof, **est.model_dump(),
                         per_replica_qps=est.max_qps / replicas))
    return rows


def fixed_qps_table(points: list[dict], metric: str, baseline: str | None = None) -> list[dict]:
    """Rows per profile and measured QPS: each deployment's metric and its ratio baseline/deployment
    (> 1 means the deployment's tokens come that many times faster than the baseline's).
    Values are interpolated over *steady* points only (None where a deployment has none around that QPS)."""
    rows = []
    by_profile: dict[str, dict[str, list[dict]]] = {}
    for (dep, prof), pts in group(points).items():
        by_profile.setdefault(prof, {})[dep] = [p for p in pts if p.get("steady", True)]
    for prof, deps in sorted(by_profile.items()):
        base = baseline if baseline in deps else sorted(deps)[0]
        qps_values = sorted({p["target_qps"] for pts in deps.values() for p in pts})
        for q in qps_values:
            ref = value_at_qps(deps[base], metric, q)
            for dep, pts in sorted(deps.items()):
                v = value_at_qps(pts, metric, q)
                ratio = ref / v if (ref is not None and v) else None
                rows.append(dict(profile=prof, qps=q, deployment=dep, baseline=base, value_ms=v, speedup=ratio))
    return rows


# The autoscaler's schema wants ITL > 0; a server that coalesces chunks can show a p50 gap of 0 ms.
_MIN_ITL_MS = 1e-3


def capacity_profile_models(points: list[dict], metadata: dict) -> dict[str, CapacityProfile]:
    """One `CapacityProfile` per deployment: per workload, the *steady* points only, per replica (QPS and
    concurrency divided by the deployment's replica count), strictly increasing QPS. Workloads without a
    steady point are left out; a deployment without any is left out. The model validates on construction."""
    by_dep: dict[str, list[WorkloadCapacity]] = {}
    for (dep, prof), pts in sorted(group(points).items()):
        first = pts[0]
        replicas = max(1, int(first.get("replicas", 1)))
        curve: list[CapacityPoint] = []
        for p in _sorted(pts):
            if not p.get("steady") or (curve and p["target_qps"] / replicas <= curve[-1].qps):
                continue
            curve.append(CapacityPoint(
                qps=p["target_qps"] / replicas, concurrency=p["mean_concurrency"] / replicas,
                **{k: max(p[k], _MIN_ITL_MS) for k in ("itl_p50_ms", "itl_p90_ms", "itl_p99_ms")},
                ttft_p50_ms=p["ttft_p50_ms"] or None, ttft_p90_ms=p["ttft_p90_ms"] or None))
        if curve:
            by_dep.setdefault(dep, []).append(WorkloadCapacity(
                name=prof, prompt_tokens=int(first["prompt_tokens"]), output_tokens=int(first["output_tokens"]),
                points=curve))
    out = {}
    for dep, workloads in by_dep.items():
        model = next(p.get("model", "") for p in points if p["deployment"] == dep)
        out[dep] = CapacityProfile(deployment=dep, model=model, machine=metadata.get("machine", ""),
                                   created=metadata.get("created", ""), source=metadata.get("command", "sparse24-loadtest"),
                                   workloads=workloads)
    return out


def capacity_profiles(points: list[dict], metadata: dict) -> dict[str, dict]:
    """`capacity_profile_models` as JSON documents (what `CapacityProfile.save` writes)."""
    return {dep: prof.model_dump(mode="json") for dep, prof in capacity_profile_models(points, metadata).items()}
