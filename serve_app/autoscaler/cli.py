"""``sparse24-autoscale``: the ITL-SLA autoscaler's simulator and tools.

    sparse24-autoscale simulate [SCENARIO.yaml] [--profile PROFILE.json [--workload NAME]] [--out DIR]
                                [--duration-s S] [--grid-duration-s S] [--workers N]
    sparse24-autoscale h100-profile OUT.json      # write the synthetic H100-like profile
    sparse24-autoscale check-profile PROFILE.json [--sla-ms 50 --percentile 90]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
DEFAULT_SCENARIO = _HERE / "scenarios" / "h100_bursty.yaml"
DEFAULT_OUT = _HERE.parents[1] / "loadtest" / "results" / "autoscaler"  # every result under loadtest/results/<study>/


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="sparse24-autoscale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("simulate", help="simulate ours vs the tuned baselines on a scenario; write report + plots")
    s.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO))
    s.add_argument("--out", default=str(DEFAULT_OUT))
    s.add_argument("--profile", default=None, help="capacity profile JSON in place of the scenario's (e.g. a measured one)")
    s.add_argument("--workload", default=None, help="profile workload to use (default: the scenario's)")
    s.add_argument("--duration-s", type=float, default=None, help="override the trace duration (s)")
    s.add_argument("--grid-duration-s", type=float, default=None, help="override the grid trace duration (s)")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--name", default=None, help="override the scenario name (output file stem)")
    h = sub.add_parser("h100-profile", help="write the synthetic H100-like capacity profile")
    h.add_argument("out")
    c = sub.add_parser("check-profile", help="validate a capacity profile and print per-replica capacity at an SLA")
    c.add_argument("profile")
    c.add_argument("--sla-ms", type=float, default=50.0)
    c.add_argument("--percentile", type=int, choices=(50, 90, 99), default=90)
    a = ap.parse_args(argv)

    if a.cmd == "simulate":
        from .report import run_scenario, write_report
        from .scenario import Scenario

        sc = Scenario.load(a.scenario).with_duration(a.duration_s).with_profile(a.profile, a.workload)
        if a.grid_duration_s:
            sc = sc.model_copy(update={"sweep": sc.sweep.model_copy(update={"duration_s": a.grid_duration_s})})
        if a.name:
            sc = sc.model_copy(update={"name": a.name})
        sc.resolve_profile()  # a wrong --profile fails here, before any simulation
        rep = run_scenario(sc, workers=a.workers)
        cmd = "python -m sparse24.serve_app.autoscaler.cli " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
        paths = write_report(rep, Path(a.out), cmd)
        o = rep["ours"]
        print(f"ours: {o['token_attainment']:.4f} tokens in SLA, {o['replica_hours']:.2f} replica-hours")
        for b in rep["baselines"]:
            best = b["best"]
            if best:
                print(f"{b['name']} best: {best['policy']}: {best['token_attainment']:.4f} tokens in SLA, "
                      f"{best['replica_hours']:.2f} replica-hours; ratio {b['replica_hours_ratio']} (goal {b['goal_ratio']}: "
                      f"{'met' if b['goal_met'] else 'missed'})")
            else:
                print(f"{b['name']}: no setting reached the attainment goal")
        print(f"all goals met: {rep['goal_met']}")
        for p in paths:
            print(p)
        return 0 if rep["goal_met"] else 1
    if a.cmd == "h100-profile":
        from .synthetic import h100_like_profile

        h100_like_profile().save(a.out)
        print(a.out)
        return 0
    if a.cmd == "check-profile":
        from .profile import CapacityProfile

        prof = CapacityProfile.load(a.profile)
        for w in prof.workloads:
            cap = w.curve().max_qps_at_itl(a.sla_ms, a.percentile)
            print(json.dumps({"workload": w.name, "prompt_tokens": w.prompt_tokens, "output_tokens": w.output_tokens,
                              "points": len(w.points), f"max_qps_per_replica_at_p{a.percentile}_{a.sla_ms:g}ms": round(cap, 3)}))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
