"""Seed-style capacity plots (Figs. 2/4): ITL vs QPS, one line per deployment, with the SLA line."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: sweeps run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from .capacity import group, max_qps_at_sla  # noqa: E402


def plot_profile(points: list[dict], profile: str, metric: str, sla_ms: float | None, out_path: Path,
                 title_suffix: str = "") -> Path:
    """One PNG for one workload profile: left ITL (metric) vs QPS, right TTFT p90 vs QPS.

    Hollow markers are unsteady points (saturated / schedule slipped / errors); the dotted vertical line
    per deployment is its max QPS within the SLA.
    """
    fig, (ax_itl, ax_ttft) = plt.subplots(1, 2, figsize=(11, 4.2))
    curves = {dep: sorted(pts, key=lambda p: p["target_qps"])
              for (dep, prof), pts in group(points).items() if prof == profile}
    if not curves:
        raise ValueError(f"no points for profile {profile!r}")
    for i, (dep, pts) in enumerate(sorted(curves.items())):
        color = f"C{i}"
        xs = [p["target_qps"] for p in pts]
        for ax, key in ((ax_itl, metric), (ax_ttft, "ttft_p90_ms")):
            ax.plot(xs, [p[key] for p in pts], "-", color=color, label=dep)
            for p in pts:
                ax.plot(p["target_qps"], p[key], "o", color=color,
                        markerfacecolor=color if p.get("steady", True) else "none")
        if sla_ms is not None:
            est = max_qps_at_sla(pts, metric, sla_ms)
            if est.max_qps > 0:
                ax_itl.axvline(est.max_qps, color=color, ls=":", lw=1)
    if sla_ms is not None:
        ax_itl.axhline(sla_ms, color="k", ls="--", lw=1, label=f"SLA {sla_ms:g} ms")
    first = next(iter(curves.values()))[0]
    shape = f"{first.get('prompt_tokens', '?')} in / {first.get('output_tokens', '?')} out tokens"
    ax_itl.set(xlabel="offered load (requests/s)", ylabel=f"ITL {metric.split('_')[1]} (ms)",
               title=f"{profile}: inter-token latency ({shape}){title_suffix}")
    ax_ttft.set(xlabel="offered load (requests/s)", ylabel="TTFT p90 (ms)", title=f"{profile}: time to first token")
    for ax in (ax_itl, ax_ttft):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
