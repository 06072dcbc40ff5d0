"""Run a scenario (ours + Ray's default swept over target_ongoing_requests) and write the report:
``<out>/<name>.json`` (every number), ``<out>/<name>.md`` (tables + verdict), ``<out>/<name>.png``
(replicas and ITL over time), ``<out>/<name>_sweep.png`` (attainment vs replica-hours)."""

from __future__ import annotations

import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .profile import CapacityProfile
from .scenario import Scenario
from .sim import PolicySpec, SimResult, simulate
from .trace import Trace, make_trace

_CTX: Dict = {}


def _init(scenario_json: str) -> None:
    sc = Scenario.model_validate_json(scenario_json)
    curve = CapacityProfile.load(sc.resolve_profile()).workload(sc.workload).curve()
    _CTX.update(sc=sc, curve=curve, trace=make_trace(sc.trace))


def _run(policy_json: str) -> Tuple[SimResult, float]:
    sc, curve, trace = _CTX["sc"], _CTX["curve"], _CTX["trace"]
    t0 = time.perf_counter()
    r = simulate(trace, curve, sc.sla, sc.fleet, PolicySpec.model_validate_json(policy_json))
    return r, time.perf_counter() - t0


def run_scenario(sc: Scenario, workers: int = 2, progress: bool = True) -> Dict:
    """Simulate ours and every default variant; pick the verdict. Returns the report dict."""
    policies = [sc.ours] + sc.default_policies()
    sj = sc.model_dump_json()
    results: List[Tuple[SimResult, float]] = []
    if workers <= 1:
        _init(sj)
        it = map(_run, [p.model_dump_json() for p in policies])
    else:
        ex = ProcessPoolExecutor(workers, initializer=_init, initargs=(sj,))
        it = ex.map(_run, [p.model_dump_json() for p in policies])
    try:
        from tqdm import tqdm
        it = tqdm(it, total=len(policies), desc=f"simulate {sc.name}", disable=not progress, file=sys.stderr)
    except ImportError:  # pragma: no cover
        pass
    results = list(it)
    if workers > 1:
        ex.shutdown()
    ours, ours_s = results[0]
    defaults = results[1:]
    ok_defaults = [(r, s) for r, s in defaults if r.token_attainment >= sc.goal_attainment]
    best = min(ok_defaults, key=lambda rs: rs[0].replica_hours)[0] if ok_defaults else None
    ratio = (ours.replica_hours / best.replica_hours) if best else None
    met = bool(ours.token_attainment >= sc.goal_attainment and ratio is not None and ratio <= sc.goal_ratio)
    n_req = None
    if "trace" in _CTX:
        n_req = len(_CTX["trace"])
    return {
        "scenario": sc.model_dump(mode="json"),
        "ours": ours.summary(), "ours_sim_seconds": round(ours_s, 2),
        "defaults": [dict(r.summary(), sim_seconds=round(s, 2), target_ongoing_requests=r.spec["target_ongoing_requests"]) for r, s in defaults],
        "best_default": best.summary() if best else None,
        "replica_hours_ratio": None if ratio is None else round(ratio, 4),
        "goal_met": met, "requests_in_trace": n_req,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "_series": {"ours": ours.series, "best_default": best.series if best else None},
    }


def write_report(rep: Dict, out_dir: Path, command: str) -> List[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sc = rep["scenario"]
    name = sc["name"]
    series = rep.pop("_series")
    rep["command"] = command
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.md", out_dir / f"{name}.png", out_dir / f"{name}_sweep.png"]
    paths[0].write_text(json.dumps(rep, indent=1) + "\n")
    paths[1].write_text(_markdown(rep))
    _plot_series(series, rep, paths[2])
    _plot_sweep(rep, paths[3])
    rep["_series"] = series
    return paths


def _markdown(rep: Dict) -> str:
    sc = rep["scenario"]
    sla = sc["sla"]
    o, b = rep["ours"], rep["best_default"]
    lines = [f"# Autoscaler simulation: {sc['name']}", "",
             f"SLA: p{sla['itl_percentile']} ITL <= {sla['itl_target_ms']} ms. Goal: >= {sc['goal_attainment']:.0%} of tokens within the SLA "
             f"using <= {sc['goal_ratio']}x the replica-hours of Ray's default policy at its best `target_ongoing_requests` "
             f"(cheapest one that reaches the same attainment).", "",
             f"**Verdict: goal {'MET' if rep['goal_met'] else 'NOT MET'}** — ours: {o['token_attainment']:.2%} tokens in SLA, "
             f"{o['replica_hours']:.1f} replica-hours; "
             + (f"best default (target_ongoing_requests={b['policy'].split('=')[-1].rstrip(')')}): {b['token_attainment']:.2%}, "
                f"{b['replica_hours']:.1f} replica-hours; ratio **{rep['replica_hours_ratio']:.2f}x**." if b else
                "no default setting in the sweep reached the attainment goal."), "",
             "| policy | tokens in SLA | requests in SLA | replica-hours | scale ups/downs | time above SLA (s) | TTFT p50/p99 (ms) | max replicas | sim time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [dict(o, sim_seconds=rep["ours_sim_seconds"])] + rep["defaults"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['token_attainment']:.2%} | {r['request_attainment']:.2%} | {r['replica_hours']:.1f} | "
                     f"{r['scale_ups']}/{r['scale_downs']} | {r['time_above_sla_s']:.0f} | {r['ttft_p50_ms']:.0f}/{r['ttft_p99_ms']:.0f} | "
                     f"{r['max_replicas_seen']} | {r['sim_seconds']} |")
    tr, fl = sc["trace"], sc["fleet"]
    lines += ["", "## Setup", "",
              f"- Trace: {tr['kind']}, {tr['duration_s']/3600:.0f} h, mean {tr['rate_rps']} req/s (diurnal +-{tr['diurnal_amplitude']:.0%}), "
              f"gamma gaps cv={tr['cv']}, {tr['bursts_per_hour']} bursts/h x{tr['burst_multiplier']} for ~{tr['burst_mean_s']} s "
              f"(ramp {tr['burst_ramp_s']} s), {tr['prompt_tokens']}/{tr['output_tokens']} tokens, seed {tr['seed']}; "
              f"{rep['requests_in_trace']} requests.",
              f"- Profile: `{sc['profile_path']}` workload `{sc['workload']}` (the replicas' true behaviour and our policy's model).",
              f"- Fleet: replica start-up {fl['startup_s']} s, max_ongoing_requests {fl['max_ongoing_requests']}, "
              f"replicas {fl['min_replicas']}..{fl['max_replicas']} (initial {fl['initial_replicas']}), tick {fl['dt_s']} s.",
              f"- Ours: `{json.dumps(sc['ours']['law'], separators=(',', ':'))}`, Ray wrapper upscale/downscale delay "
              f"{sc['ours']['upscale_delay_s']}/{sc['ours']['downscale_delay_s']} s, metrics every {sc['ours']['metrics_interval_s']} s.",
              f"- Ray default: delays {sc['default_base']['upscale_delay_s']}/{sc['default_base']['downscale_delay_s']} s, "
              f"look_back {sc['default_base']['look_back_period_s']} s, metrics every {sc['default_base']['metrics_interval_s']} s (Ray 2.60 defaults).",
              "- A token is *within SLA* when the replica that produced it was running at a concurrency whose profile "
              f"p{sla['itl_percentile']} ITL is <= target during that tick; a request is within SLA when all its tokens were.",
              f"- Machine: {rep['machine']['platform']}, {rep['machine']['cpus']} CPUs, Python {rep['machine']['python']}; date {rep['date']}.",
              f"- Command: `{rep['command']}`", "",
              "Both policies pass through the same re-implementation of Ray's wrapper (scaling factors, delays, bounds; "
              "checked against Ray's own functions in tests/serve_app/autoscaler/test_ray_rules.py).", ""]
    return "\n".join(lines)


def _plot_series(series: Dict, rep: Dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sla_ms = rep["scenario"]["sla"]["itl_target_ms"]
    fig, ax = plt.subplots(3, 1, figsize=(13, 9), sharex=True)
    for key, color, label in (("best_default", "tab:red", "Ray default (best target)"), ("ours", "tab:blue", "ITL-SLA (ours)")):
        s = series.get(key)
        if not s:
            continue
        t = np.array(s["t_s"]) / 3600.0
        ax[0].plot(t, s["replicas"], color=color, lw=0.8, label=label)
        ax[1].plot(t, s["itl_ms"], color=color, lw=0.5, label=label)
        ax[2].plot(t, np.array(s["out_of_sla_frac"]) * 100, color=color, lw=0.6, label=label)
    s = series["ours"]
    ax0b = ax[0].twinx()
    ax0b.plot(np.array(s["t_s"]) / 3600.0, s["rate_rps"], color="0.6", lw=0.4)
    ax0b.set_ylabel("arrivals (req/s, grey)")
    ax[0].set_ylabel("replicas")
    ax[1].axhline(sla_ms, color="k", ls="--", lw=0.8, label=f"SLA {sla_ms} ms")
    ax[1].set_ylabel(f"p{rep['scenario']['sla']['itl_percentile']} ITL (ms)")
    ax[2].set_ylabel("tokens out of SLA (%)")
    ax[2].set_xlabel("hours")
    for a in ax:
        a.legend(loc="upper left", fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle(f"{rep['scenario']['name']}: replicas, ITL and SLA misses over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_sweep(rep: Dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    d = rep["defaults"]
    ax.plot([r["replica_hours"] for r in d], [100 * r["token_attainment"] for r in d], "o-", color="tab:red", label="Ray default (sweep)")
    for r in d:
        ax.annotate(f"{r['target_ongoing_requests']:g}", (r["replica_hours"], 100 * r["token_attainment"]), fontsize=7)
    o = rep["ours"]
    ax.plot([o["replica_hours"]], [100 * o["token_attainment"]], "*", ms=14, color="tab:blue", label="ITL-SLA (ours)")
    ax.axhline(100 * rep["scenario"]["goal_attainment"], color="k", ls="--", lw=0.8, label="goal attainment")
    ax.set_xlabel("replica-hours")
    ax.set_ylabel("tokens within ITL SLA (%)")
    ax.set_ylim(max(0, min([100 * r["token_attainment"] for r in d] + [100 * o["token_attainment"]]) - 2), 100.5)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Attainment vs cost (labels: target_ongoing_requests)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
