"""Sweep outputs: per-point CSV/JSON with run metadata, raw samples, capacity tables, plots, capacity profiles."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..serve_app.provenance import run_provenance
from .capacity import capacity_profiles, fixed_qps_table, fixed_sla_table
from .metrics import RequestSample

_ID_COLUMNS = ("deployment", "profile", "target_qps", "steady", "offered_qps", "achieved_qps")


def run_metadata(command: str, endpoints: list[dict]) -> dict:
    """Machine, versions, date and the exact command (serve_app.provenance), plus the endpoints measured."""
    return dict(run_provenance(command), endpoints=endpoints)


def write_samples(path: Path, samples: list[RequestSample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples))


def read_samples(path: Path) -> list[RequestSample]:
    return [RequestSample.from_dict(json.loads(line)) for line in Path(path).read_text().splitlines() if line]


def write_points(out_dir: Path, points: list[dict], meta: dict) -> None:
    """points.json (metadata + points) and points.csv (one row per point); rewritten after every point."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "points.json").write_text(json.dumps(dict(metadata=meta, points=points), indent=1) + "\n")
    if not points:
        return
    keys = list(_ID_COLUMNS) + sorted({k for p in points for k in p} - set(_ID_COLUMNS))
    with open(out_dir / "points.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for p in points:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in p.items()})


def _fmt(v, nd=2) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def write_capacity(out_dir: Path, points: list[dict], meta: dict, sla_metric: str, sla_ms: float,
                   baseline: str | None) -> list[Path]:
    """capacity.json + capacity.md (fixed-SLA and fixed-QPS tables), one PNG per profile and one
    capacity profile per deployment (capacity_profile_<deployment>.json, the autoscaler's schema)."""
    from .plots import plot_profile

    written = []
    sla_rows = fixed_sla_table(points, sla_metric, sla_ms)
    qps_rows = fixed_qps_table(points, sla_metric, baseline)
    (out_dir / "capacity.json").write_text(json.dumps(dict(
        metadata=meta, sla=dict(metric=sla_metric, target_ms=sla_ms), fixed_sla=sla_rows, fixed_qps=qps_rows),
        indent=1) + "\n")
    lines = [f"# Capacity ({meta.get('created', '')})", "",
             f"Machine: {meta.get('machine', '')}  ", f"Command: `{meta.get('command', '')}`", "",
             f"## Fixed SLA: max QPS with {sla_metric} ≤ {sla_ms:g} ms", "",
             "| profile | deployment | max QPS | per replica | status | passing points |", "|---|---|---|---|---|---|"]
    for r in sla_rows:
        mark = "≥ " if r["status"] == "extrapolated" else ""
        flag = r["status"] + (", too few points" if r["too_few_points"] else "")
        lines.append(f"| {r['profile']} | {r['deployment']} | {mark}{_fmt(r['max_qps'])} | "
                     f"{mark}{_fmt(r['per_replica_qps'])} | {flag} | {r['passing_points']} |")
    lines += ["", f"## Fixed QPS: {sla_metric} per deployment, steady points only "
              "(speedup = baseline / deployment)", "",
              "| profile | QPS | deployment | value (ms) | speedup vs baseline |", "|---|---|---|---|---|"]
    for r in qps_rows:
        lines.append(f"| {r['profile']} | {r['qps']:g} | {r['deployment']} | {_fmt(r['value_ms'])} | "
                     f"{_fmt(r['speedup'])} (vs {r['baseline']}) |")
    (out_dir / "capacity.md").write_text("\n".join(lines) + "\n")
    written += [out_dir / "capacity.json", out_dir / "capacity.md"]
    for prof in sorted({p["profile"] for p in points}):
        written.append(plot_profile(points, prof, sla_metric, sla_ms, out_dir / f"itl_vs_qps_{prof}.png"))
    for dep, doc in capacity_profiles(points, meta).items():
        path = out_dir / f"capacity_profile_{dep}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        written.append(path)
    return written
