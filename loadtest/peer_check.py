"""Do our load test and `vllm bench serve` read the same endpoint the same way? (issue 15, the peer cross-check)

At each of a few arrival rates, both tools send the same open-loop Poisson load to one live endpoint, `--runs`
times: `vllm bench serve` draws its arrivals, then our client replays exactly its send times (from vLLM's
detailed result), with the same count, prompt and output lengths and `ignore_eos`. With a few dozen
requests per run the arrival pattern itself moves the medians more than any client does, so both tools must
see the same one. Each run gives
each tool's medians of TTFT, TPOT and ITL (the definitions of `serve_app/latency.py`, which are vLLM's); the
report takes the median over runs and calls a metric in agreement when ours is within `--tolerance` (10 %) of
vLLM's. Where they disagree, `client_check.py` (both tools against a server of known timing) says which
tool is wrong.

    python -m sparse24.loadtest.peer_check --base-url http://127.0.0.1:8000/sparse --model sparse \\
        --tokenizer /root/m8b/sparse24-dense --input-len 512 --output-len 256 --qps 1,8,16 \\
        --num-prompts 48 --runs 3 --out loadtest/results/peer_check/h200_2026-12-09_chat

Writes OUT.json (every run of every tool, provenance) and OUT.md (the table). Load goes to the endpoint
given; tests and CPU runs point it at 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

from ..serve_app.latency import percentile
from ..serve_app.provenance import describe, run_provenance
from .metrics import RequestSample

METRICS = ("ttft", "tpot", "itl")
TOOLS = ("ours", "vllm")


def medians_of_samples(samples: list[RequestSample]) -> dict:
    """Our client's medians (ms) over the successful requests of one run."""
    ok = [s for s in samples if s.success]
    return {"ttft": percentile([s.ttft_s * 1e3 for s in ok if s.ttft_s is not None], 50),
            "tpot": percentile([s.tpot_s * 1e3 for s in ok if s.tpot_s is not None], 50),
            "itl": percentile([g * 1e3 for s in ok for g in s.itl_s], 50),
            "completed": len(ok), "failed": len(samples) - len(ok)}


def medians_of_vllm(res: dict) -> dict:
    """`vllm bench serve`'s medians (ms) from its detailed result, by the same definitions, and its send times
    (s from its first request) for our client to replay."""
    stats = {k: res[k]["p50_ms"] for k in METRICS}
    starts = sorted(res["raw"].get("start_times") or [])
    if len(starts) != res.get("completed"):
        raise RuntimeError(f"vllm bench serve's result has {len(starts)} send times for {res.get('completed')} completed "
                           "requests: nothing to replay (needs --save-detailed, and every request completed)")
    return dict(stats, completed=res.get("completed"), failed=None, schedule_s=[t - starts[0] for t in starts])


def agreement(runs: dict[str, list[dict]], tolerance: float) -> dict:
    """Median over runs per tool and metric, ours / vLLM's, and whether that ratio is within the tolerance."""
    out = {}
    for m in METRICS:
        med = {t: percentile([r[m] for r in runs[t]], 50) for t in TOOLS}
        ratio = med["ours"] / med["vllm"] if med["vllm"] else float("nan")
        out[m] = {"ours_ms": med["ours"], "vllm_ms": med["vllm"], "ratio": ratio,
                  "agree": bool(abs(ratio - 1.0) <= tolerance + 1e-9)}  # 5.5 / 5.0 is 1.1000000000000001
    return out


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its finished children (our client runs here, vLLM's in a
    child): on a small box the client's CPU is taken from the server under test, so the report shows it."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_ours(a, synth, schedule_s: list[float]) -> dict:
    from .locustfile import PointPlan
    from .runner import run_point

    plan = PointPlan(base_url=a.base_url, model=a.model, prompts=[synth.make(a.input_len) for _ in schedule_s],
                     output_tokens=a.output_len, schedule_s=schedule_s, max_in_flight=a.max_in_flight,
                     drain_timeout_s=120.0, api_key=a.api_key)
    samples, _ = run_point(plan)
    return medians_of_samples(samples)


def run_vllm_tool(a, qps: float, seed: int, work: Path) -> dict:
    from .client_check import run_vllm

    res = run_vllm(a.base_url, qps, a.num_prompts, a.output_len, a.tokenizer, work / f"vllm_{qps:g}_{seed}.json",
                   model=a.model, input_len=a.input_len, seed=seed, api_key=a.api_key)
    return medians_of_vllm(res)


def markdown(doc: dict) -> str:
    s = doc["settings"]
    lines = [f"# Peer cross-check: our load test vs `vllm bench serve` ({doc['provenance']['created']})", "",
             f"- {describe(doc['provenance'])}",
             f"- Endpoint `{s['base_url']}`, model `{s['model']}`; {s['input_len']} in / {s['output_len']} out tokens "
             f"(ignore_eos), {s['num_prompts']} Poisson arrivals per run (vLLM's tool draws them, ours replays its send "
             f"times), {s['runs']} runs per tool; "
             f"median over runs of each run's median; agreement = ours within {s['tolerance']:.0%} of vLLM's.",
             f"- Command: `{doc['provenance']['command']}`", "",
             "| QPS | metric | ours (ms) | ours, runs | vllm bench serve (ms) | vLLM, runs | ours / vLLM | agree |",
             "|---|---|---|---|---|---|---|---|"]
    cpu_rows = []
    for p in doc["points"]:
        cpu = {t: percentile([r.get("client_cpu_s", float("nan")) for r in p["runs"][t]], 50) for t in TOOLS}
        cpu_rows.append(f"| {p['qps']:g} | {cpu['ours']:.2f} | {cpu['vllm']:.2f} |")
        for m in METRICS:
            r = p["agreement"][m]
            spread = {t: "–".join(f"{f(x[m] for x in p['runs'][t]):.1f}" for f in (min, max)) for t in TOOLS}
            lines.append(f"| {p['qps']:g} | {m.upper()} | {r['ours_ms']:.2f} | {spread['ours']} | {r['vllm_ms']:.2f} | "
                         f"{spread['vllm']} | {r['ratio']:.3f} | {'yes' if r['agree'] else '**no**'} |")
    n_agree = sum(p["agreement"][m]["agree"] for p in doc["points"] for m in METRICS)
    lines += ["", f"{n_agree} of {len(doc['points']) * len(METRICS)} (point, metric) pairs agree.", "",
              "Client CPU per run (s, median over runs; vLLM's includes its process start-up). On a machine where "
              "client and server share cores, this CPU is taken from the server under test:", "",
              "| QPS | ours | vllm bench serve |", "|---|---|---|", *cpu_rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="the endpoint both tools load, e.g. http://127.0.0.1:8000")
    ap.add_argument("--model", required=True, help="served model name")
    ap.add_argument("--tokenizer", required=True, help="local model directory with the tokenizer")
    ap.add_argument("--input-len", type=int, default=512)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--qps", default="1,8,16", help="comma-separated arrival rates (>= 3 for the issue)")
    ap.add_argument("--num-prompts", type=int, default=48, help="requests per run and tool")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--max-in-flight", type=int, default=512)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--out", required=True, help="output path without extension")
    a = ap.parse_args(argv)
    try:
        qps = [float(q) for q in a.qps.split(",") if q.strip()]
    except ValueError:
        ap.error(f"--qps must be comma-separated numbers, got {a.qps!r}")
    if not qps or min(qps) <= 0:
        ap.error(f"--qps needs positive rates, got {a.qps!r}")
    if a.runs < 1 or a.num_prompts < 2 or a.input_len < 1 or a.output_len < 2:
        ap.error("--runs >= 1, --num-prompts >= 2, --input-len >= 1 and --output-len >= 2 (ITL needs two tokens)")
    from .prompts import PromptSynthesizer, load_tokenizer

    synth = PromptSynthesizer(load_tokenizer(a.tokenizer), seed=0)
    prov = run_provenance(" ".join(["python -m sparse24.loadtest.peer_check", *(argv if argv is not None else sys.argv[1:])]))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="peer_check_"))  # vLLM's detailed results: MBs, not kept
    points = []
    for q in qps:
        runs: dict[str, list[dict]] = {t: [] for t in TOOLS}
        schedules = []
        for i in range(a.runs):
            schedule = None
            for tool in ("vllm", "ours"):  # ours replays the arrivals vLLM's tool just sent
                cpu0 = _cpu_s()
                r = run_vllm_tool(a, q, 1000 * i + 1, work) if tool == "vllm" else run_ours(a, synth, schedule)
                r["client_cpu_s"] = round(_cpu_s() - cpu0, 2)
                schedule = r.pop("schedule_s", schedule)
                runs[tool].append(r)
                print(f"{q:g} qps run {i + 1}/{a.runs} {tool}: " + ", ".join(f"{m} {r[m]:.2f}" for m in METRICS),
                      flush=True)
            schedules.append([round(t, 4) for t in schedule])
        points.append({"qps": q, "runs": runs, "agreement": agreement(runs, a.tolerance), "schedules_s": schedules})
        doc = {"provenance": prov, "settings": {k: v for k, v in vars(a).items() if k != "api_key"}, "points": points}
        out.with_suffix(".json").write_text(json.dumps(doc, indent=2))  # after every point: nothing lost
    out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
