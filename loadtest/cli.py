"""`sparse24-loadtest`: open-loop QPS sweeps and capacity curves.

    sparse24-loadtest sweep CONFIG.yaml --out DIR [--qps 1,2,4] [--duration S] [--base-url URL] [--resume]
    sparse24-loadtest curves DIR                 # re-draw tables, plots, capacity profiles from DIR/points.json
    sparse24-loadtest profiles [--scale tiny]    # list workload profiles
    sparse24-loadtest locustfile                 # path for `locust -f` (interactive web UI)
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path


def _sweep(args) -> int:
    from .sweep import SweepConfig

    raw = SweepConfig.load(args.config).model_dump()
    if args.qps:
        raw["qps"], raw["auto_qps"] = [float(q) for q in args.qps.split(",")], None
    for key in ("duration_s", "warmup_s", "profile_scale"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    if args.profiles:
        raw["profiles"] = args.profiles.split(",")
    if args.deployments:
        names = args.deployments.split(",")
        unknown = sorted(set(names) - {d["name"] for d in raw["deployments"]})
        if unknown:
            raise ValueError(f"--deployments: {unknown} not in the config's deployments "
                             f"{[d['name'] for d in raw['deployments']]}")
        raw["deployments"] = [d for d in raw["deployments"] if d["name"] in names]
    if args.base_url:
        for dep in raw["deployments"]:
            dep["base_url"] = args.base_url
    cfg = SweepConfig.model_validate(raw)

    import locust  # noqa: F401 - gevent monkey-patching must happen before the HTTP stack is imported

    from .execute import run_sweep

    command = "sparse24-loadtest " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    points = run_sweep(cfg, args.out, command, progress=not args.quiet, resume=args.resume)
    out = Path(args.out)
    print((out / "capacity.md").read_text())
    unsteady = [p for p in points if not p["steady"]]
    print(f"{len(points)} points ({len(unsteady)} unsteady) -> {out}/points.csv, points.json, capacity.md, "
          f"itl_vs_qps_*.png, capacity_profile_*.json")
    return 0


def _curves(args) -> int:
    from .report import write_capacity

    d = Path(args.dir)
    doc = json.loads((d / "points.json").read_text())
    cfg = doc["metadata"].get("config", {})
    sla = cfg.get("sla", {})
    metric = args.metric or sla.get("metric", "itl_p90_ms")
    target = args.sla_ms if args.sla_ms is not None else sla.get("target_ms")
    if target is None:
        raise SystemExit("no SLA in points.json; pass --sla-ms")
    for path in write_capacity(d, doc["points"], doc["metadata"], metric, float(target), cfg.get("baseline")):
        print(path)
    return 0


def _profiles(args) -> int:
    from .profiles import load_profiles

    ps = load_profiles(args.file)
    print(f"{'profile':24s} {'prompt':>7s} {'output':>7s}   ({args.scale})")
    for name in ps.profiles:
        p = ps.get(name, args.scale)
        print(f"{name:24s} {p.prompt_tokens:7d} {p.output_tokens:7d}   {p.description}")
    return 0


def _locustfile(_args) -> int:
    print(Path(__file__).with_name("locustfile.py"))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sparse24-loadtest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep", help="run a QPS sweep and write CSV/JSON/PNG/capacity profiles")
    s.add_argument("config", help="sweep YAML (see loadtest/configs/)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--qps", help="comma-separated QPS list (overrides the config)")
    s.add_argument("--duration-s", type=float, dest="duration_s")
    s.add_argument("--warmup-s", type=float, dest="warmup_s")
    s.add_argument("--profile-scale", dest="profile_scale")
    s.add_argument("--profiles", help="comma-separated profile names (overrides the config)")
    s.add_argument("--base-url", help="override every deployment's base_url (models served side by side)")
    s.add_argument("--deployments", help="comma-separated deployment names: measure only these")
    s.add_argument("--resume", action="store_true",
                   help="keep the points already in OUT/points.json (same load settings), measure the rest")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=_sweep)
    c = sub.add_parser("curves", help="re-draw tables/plots/capacity profiles from a sweep directory")
    c.add_argument("dir")
    c.add_argument("--metric")
    c.add_argument("--sla-ms", type=float)
    c.set_defaults(fn=_curves)
    p = sub.add_parser("profiles", help="list workload profiles")
    p.add_argument("--scale", default="full")
    p.add_argument("--file")
    p.set_defaults(fn=_profiles)
    sub.add_parser("locustfile", help="print the locustfile path").set_defaults(fn=_locustfile)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("locust").setLevel(logging.WARNING)  # one runner per point: its ramp-up lines are noise
    try:
        return args.fn(args)
    except (FileNotFoundError, ValueError, ConnectionError, TimeoutError, KeyError) as e:
        print(f"sparse24-loadtest: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
