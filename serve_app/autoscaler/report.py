"""Run a scenario (ours + every baseline tuned over its grid) and write the report:
``<out>/<name>.json`` (every number), ``<out>/<name>.md`` (tables + verdict), ``<out>/<name>.png``
(replicas and ITL over time), ``<out>/<name>_sweep.png`` (attainment vs replica-hours of the grids).

Best setting of a baseline: the fewest replica-hours among its settings with >= ``goal_attainment`` of
tokens within the ITL SLA. The grid runs on the first ``sweep.duration_s`` of the trace; the
``sweep.finalists`` cheapest passing settings re-run on the full trace, where the rule is applied again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..provenance import describe, run_provenance
from .profile import CapacityProfile
from .scenario import Baseline, Scenario
from .sim import PolicySpec, SimResult, simulate
from .trace import make_trace

_CTX: Dict = {}


def _init(scenario_json: str) -> None:
    sc = Scenario.model_validate_json(scenario_json)
    curve = CapacityProfile.load(sc.resolve_profile()).workload(sc.workload).curve()
    _CTX.clear()
    _CTX.update(sc=sc, curve=curve, traces={})


def _trace(duration_s: float):
    traces = _CTX["traces"]
    if duration_s not in traces:
        traces[duration_s] = make_trace(_CTX["sc"].with_duration(duration_s).trace)
    return traces[duration_s]


def _run(task: Tuple[str, float]) -> Tuple[SimResult, float]:
    policy_json, duration_s = task
    sc, curve = _CTX["sc"], _CTX["curve"]
    t0 = time.perf_counter()
    r = simulate(_trace(duration_s), curve, sc.sla, sc.fleet, PolicySpec.model_validate_json(policy_json))
    return r, time.perf_counter() - t0


def _map(sc: Scenario, tasks: List[Tuple[PolicySpec, float]], workers: int, desc: str, progress: bool) -> List[Tuple[SimResult, float]]:
    jobs = [(p.model_dump_json(), d) for p, d in tasks]
    if workers <= 1:
        _init(sc.model_dump_json())
        it = map(_run, jobs)
        ex = None
    else:
        ex = ProcessPoolExecutor(workers, initializer=_init, initargs=(sc.model_dump_json(),))
        it = ex.map(_run, jobs, chunksize=1)
    try:
        from tqdm import tqdm
        it = tqdm(it, total=len(jobs), desc=desc, disable=not progress, file=sys.stderr)
    except ImportError:  # pragma: no cover
        pass
    out = list(it)
    if ex is not None:
        ex.shutdown()
    return out


def _row(r: SimResult, s: float) -> Dict:
    return dict(r.summary(), sim_seconds=round(s, 2), spec=r.spec)


def cheapest_passing(rows: List[Dict], goal: float) -> List[Dict]:
    """Rows reaching ``goal`` token attainment, fewest replica-hours first (the 'best setting' rule)."""
    return sorted((r for r in rows if r["token_attainment"] >= goal), key=lambda r: r["replica_hours"])


def _baseline_report(b: Baseline, grid_rows: List[Dict], final_rows: List[Dict], ours: Dict, goal: float) -> Dict:
    best = (cheapest_passing(final_rows, goal) or [None])[0]
    ratio = ours["replica_hours"] / best["replica_hours"] if best else None
    met = bool(ours["token_attainment"] >= goal and ratio is not None and ratio <= b.goal_ratio)
    return {"name": b.name, "goal_ratio": b.goal_ratio, "grid": grid_rows, "finalists": final_rows, "best": best,
            "grid_passing": sum(r["token_attainment"] >= goal for r in grid_rows),
            "replica_hours_ratio": None if ratio is None else round(ratio, 4), "goal_met": met}


def run_scenario(sc: Scenario, workers: int = 2, progress: bool = True) -> Dict:
    """Tune every baseline over its grid, re-run the finalists and ours on the full trace, and compare."""
    prov = run_provenance(" ".join(sys.argv))  # taken at the start: the code that runs, not the tree at the end
    full = sc.trace.duration_s
    short = min(full, sc.sweep.duration_s or full)
    grid_tasks = [(sc.ours, short)] + [(p, short) for b in sc.baselines for p in b.policies()]
    grid = _map(sc, grid_tasks, workers, f"grid {sc.name} ({short / 3600:g} h)", progress)
    ours_grid = _row(*grid[0])
    picked: Dict[str, List[int]] = {}  # per baseline: indices into ``grid`` of its finalists
    ranges: Dict[str, range] = {}
    i = 1
    for b in sc.baselines:
        idx = ranges[b.name] = range(i, i + len(b.policies()))
        i += len(idx)
        ok = [k for k in idx if grid[k][0].token_attainment >= sc.goal_attainment]
        picked[b.name] = sorted(ok, key=lambda k: grid[k][0].replica_hours)[: sc.sweep.finalists]
    order = [0] + [k for b in sc.baselines for k in picked[b.name]]
    if short == full:  # the grid already ran on the full trace
        final = [grid[k] for k in order]
    else:
        final = _map(sc, [(grid_tasks[k][0], full) for k in order], workers, f"finalists {sc.name} ({full / 3600:g} h)", progress)
    ours = _row(*final[0])
    baselines, series, i = [], {"ours": final[0][0].series}, 1
    for b in sc.baselines:
        n = len(picked[b.name])
        grid_rows = [_row(*grid[k]) for k in ranges[b.name]]
        final_rows = [_row(*rs) for rs in final[i:i + n]]
        rep_b = _baseline_report(b, grid_rows, final_rows, ours, sc.goal_attainment)
        baselines.append(rep_b)
        if rep_b["best"] is not None:
            series[b.name] = final[i + final_rows.index(rep_b["best"])][0].series
        i += n
    prof = CapacityProfile.load(sc.resolve_profile())
    return {
        "scenario": sc.model_dump(mode="json"),
        "profile": {"path": sc.profile_path, "machine": prof.machine, "source": prof.source, "created": prof.created,
                    "measured": "modelled" not in prof.machine and not prof.source.startswith("synthetic")},
        "best_rule": f"fewest replica-hours among settings with >= {sc.goal_attainment:.1%} of tokens within the ITL SLA "
                     f"({short / 3600:g} h grid, {sc.sweep.finalists} cheapest re-run on the full {full / 3600:g} h)",
        "ours": ours, "ours_grid": ours_grid, "baselines": baselines,
        "goal_met": all(b["goal_met"] for b in baselines), "requests_in_trace": ours["requests"],
        "provenance": prov, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()], "commit": prov["git_commit"],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "_series": series,
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


_TABLE_HEAD = ["| policy | tokens in SLA | requests in SLA | replica-hours | scale ups/downs | time above SLA (s) | TTFT p50/p99 (ms) | max replicas | sim time (s) |",
               "|---|---|---|---|---|---|---|---|---|"]
_COLORS = {"ours": "tab:blue", "ray_default": "tab:red", "ray_llm_ttft": "tab:green"}


def _table_row(r: Dict) -> str:
    return (f"| {r['policy']} | {r['token_attainment']:.2%} | {r['request_attainment']:.2%} | {r['replica_hours']:.1f} | "
            f"{r['scale_ups']}/{r['scale_downs']} | {r['time_above_sla_s']:.0f} | {r['ttft_p50_ms']:.0f}/{r['ttft_p99_ms']:.0f} | "
            f"{r['max_replicas_seen']} | {r['sim_seconds']} |")


def _markdown(rep: Dict) -> str:
    sc = rep["scenario"]
    sla, o, prof = sc["sla"], rep["ours"], rep["profile"]
    goal = sc["goal_attainment"]
    lines = [f"# Autoscaler simulation: {sc['name']}", "",
             f"SLA: p{sla['itl_percentile']} ITL <= {sla['itl_target_ms']} ms. Goal: >= {goal:.1%} of tokens within the SLA, "
             "using at most the stated fraction of the replica-hours of each baseline at its best setting.",
             f"Best setting of a baseline: {rep['best_rule']}.",
             f"Profile: `{prof['path']}` — **{'measured' if prof['measured'] else 'modelled, not measured'}** ({prof['machine']}; {prof['source']}).", "",
             f"**Verdict: {'all goals MET' if rep['goal_met'] else 'goal NOT MET'}** — ours: {o['token_attainment']:.2%} tokens in SLA, "
             f"{o['replica_hours']:.1f} replica-hours.", ""]
    for b in rep["baselines"]:
        best = b["best"]
        if best is None:
            lines.append(f"- vs `{b['name']}`: no setting reached {goal:.1%} on the full trace "
                         f"({b['grid_passing']}/{len(b['grid'])} grid settings passed on the grid trace) — no ratio.")
        else:
            lines.append(f"- vs `{b['name']}` best `{best['policy']}`: {best['token_attainment']:.2%} tokens in SLA, "
                         f"{best['replica_hours']:.1f} replica-hours; ratio **{b['replica_hours_ratio']:.2f}x** "
                         f"(goal <= {b['goal_ratio']}x: {'met' if b['goal_met'] else 'MISSED'}).")
    lines += ["", f"## Full trace ({sc['trace']['duration_s'] / 3600:g} h): ours and each baseline's finalists", ""] + _TABLE_HEAD
    lines.append(_table_row(o))
    for b in rep["baselines"]:
        lines += [_table_row(r) for r in b["finalists"]]
    for b in rep["baselines"]:
        rows = sorted(b["grid"], key=lambda r: (r["token_attainment"] < goal, r["replica_hours"]))
        lines += ["", f"## Grid `{b['name']}` ({len(b['grid'])} settings, {b['grid_passing']} reach {goal:.1%}; "
                  f"grid trace, cheapest 10 passing then the rest by cost, first 15 shown; all in the JSON)", ""] + _TABLE_HEAD
        lines += [_table_row(r) for r in rows[:15]]
    lines += ["", f"Ours on the grid trace: {rep['ours_grid']['token_attainment']:.2%}, {rep['ours_grid']['replica_hours']:.1f} replica-hours.", ""]
    tr, fl = sc["trace"], sc["fleet"]
    lines += ["## Setup", "",
              f"- Trace: {tr['kind']}, {tr['duration_s']/3600:.0f} h, mean {tr['rate_rps']} req/s (diurnal +-{tr['diurnal_amplitude']:.0%}), "
              f"gamma gaps cv={tr['cv']}, {tr['bursts_per_hour']} bursts/h x{tr['burst_multiplier']} for ~{tr['burst_mean_s']} s "
              f"(ramp {tr['burst_ramp_s']} s), {tr['prompt_tokens']}/{tr['output_tokens']} tokens, seed {tr['seed']}; "
              f"{rep['requests_in_trace']} requests.",
              f"- Profile workload `{sc['workload']}`: the replicas' true behaviour in the simulator and our policy's model.",
              f"- Fleet: replica start-up {fl['startup_s']} s, max_ongoing_requests {fl['max_ongoing_requests']}, "
              f"replicas {fl['min_replicas']}..{fl['max_replicas']} (initial {fl['initial_replicas']}), tick {fl['dt_s']} s.",
              f"- Ours: `{json.dumps(sc['ours']['law'], separators=(',', ':'))}`, Ray wrapper upscale/downscale delay "
              f"{sc['ours']['upscale_delay_s']}/{sc['ours']['downscale_delay_s']} s, metrics every {sc['ours']['metrics_interval_s']} s.",
              *[f"- `{sb['name']}` base `{json.dumps({k: v for k, v in sb['base'].items() if k not in ('law', 'ttft', 'label')})}`, "
                f"grid `{json.dumps(sb['grid'])}`" for sb in sc["baselines"]],
              "- `ray_default` is Ray 2.60's `replica_queue_length_autoscaling_policy` (ray_rules.py); `ray_llm_ttft` is Ray Serve "
              "LLM's `TTFTAutoscalingPolicy` (ray-project/ray master `python/ray/serve/llm/autoscaling.py`, not in a PyPI release "
              "up to 2.60.0; ray_llm_rules.py), reading p99 TTFT through vLLM's histogram buckets, a 1 m rate window, 10 s scrapes "
              "and 5 s fetches. Every policy passes through the same re-implementation of Ray's wrapper (factors, delays, bounds).",
              "- A token is *within SLA* when the replica that produced it was running at a concurrency whose profile "
              f"p{sla['itl_percentile']} ITL is <= target during that tick; a request is within SLA when all its tokens were.",
              f"- Machine: {describe(rep['provenance'])}; load average at the end {rep['load_avg_at_end']}; "
              f"report date {rep['date']}.",
              f"- Command: `{rep['command']}`", ""]
    return "\n".join(lines)


def _plot_series(series: Dict, rep: Dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sla_ms = rep["scenario"]["sla"]["itl_target_ms"]
    fig, ax = plt.subplots(3, 1, figsize=(13, 9), sharex=True)
    for key, s in sorted(series.items(), key=lambda kv: kv[0] == "ours"):
        label = "ITL-SLA (ours)" if key == "ours" else f"{key} (best setting)"
        color = _COLORS.get(key, "tab:gray")
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

    fig, ax = plt.subplots(figsize=(8, 5))
    low = 100.0
    for b in rep["baselines"]:
        xs = [r["replica_hours"] for r in b["grid"]]
        ys = [100 * r["token_attainment"] for r in b["grid"]]
        low = min([low] + ys)
        ax.plot(xs, ys, ".", ms=4, alpha=0.6, color=_COLORS.get(b["name"], "tab:gray"), label=f"{b['name']} grid")
    o = rep["ours_grid"]
    ax.plot([o["replica_hours"]], [100 * o["token_attainment"]], "*", ms=14, color=_COLORS["ours"], label="ITL-SLA (ours)")
    ax.axhline(100 * rep["scenario"]["goal_attainment"], color="k", ls="--", lw=0.8, label="goal attainment")
    ax.set_xlabel("replica-hours (grid trace)")
    ax.set_ylabel("tokens within ITL SLA (%)")
    ax.set_ylim(max(min(low, 100 * o["token_attainment"]) - 1, 90.0), 100.3)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Attainment vs cost over each baseline's tuning grid")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
