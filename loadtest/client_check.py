"""How wrong is a load client? Our Locust client and `vllm bench serve` against a server of known timing.

Both tools time SSE chunks on the client side, so what they report is server time plus whatever the client
adds (its own event loop falling behind, JSON parsing, connection handling). `timing_server` writes every chunk
on a fixed schedule and records when it did; this check sends the same open-loop Poisson load through each
tool, reads the server's records back and reports, per tool and per concurrency, the tool's TTFT / ITL / TPOT
medians and p90s next to the truth for the same requests. With our client it also matches requests one by one
and reports each chunk's receive lag (client time since send minus server time since receipt).

    python -m sparse24.loadtest.client_check --concurrency 1,16,64 --out loadtest/results/client_check_cpu

Writes OUT.json (every number, machine, versions, command) and OUT.md. One core of the machine goes to the
server, the rest to the client under test; on a 2-core box run nothing else beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ..serve_app.latency import percentile
from ..serve_app.provenance import run_provenance
from .arrivals import arrival_times
from .metrics import RequestSample

TOOLS = ("ours", "vllm")
_STATS = ("ttft", "itl", "tpot")


def _get(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def _pcts(values_s: list[float]) -> dict[str, float]:
    a = np.asarray(values_s or [0.0]) * 1000.0
    return {"p50_ms": percentile(a, 50), "p90_ms": percentile(a, 90), "p99_ms": percentile(a, 99), "n": len(values_s)}


def truth_stats(records: dict[str, dict]) -> dict[str, dict]:
    """TTFT / ITL / TPOT (vLLM's definitions) of what the server actually did, over all its records."""
    ttft, itl, tpot = [], [], []
    for r in records.values():
        c = r["chunk_s"]
        if not c:
            continue
        ttft.append(c[0] - r["received_s"])
        itl += list(np.diff(c))
        if len(c) > 1:
            tpot.append((c[-1] - c[0]) / (len(c) - 1))
    return {"ttft": _pcts(ttft), "itl": _pcts(itl), "tpot": _pcts(tpot)}


def sample_stats(samples: list[RequestSample]) -> dict[str, dict]:
    ok = [s for s in samples if s.success]
    return {"ttft": _pcts([s.ttft_s for s in ok]), "itl": _pcts([g for s in ok for g in s.itl_s]),
            "tpot": _pcts([s.tpot_s for s in ok if s.tpot_s is not None])}


def chunk_lags(samples: list[RequestSample], prompts: list[str], records: dict[str, dict]) -> dict[str, float]:
    """Per chunk: (client time since send) - (server time since receipt): what the client added, in ms."""
    lags = []
    for s in samples:
        r = records.get(prompts[s.request_id])
        if not s.success or r is None or len(r["chunk_s"]) != len(s.chunk_times_s):
            continue
        lags += [(c - s.sent_s) - (t - r["received_s"]) for c, t in zip(s.chunk_times_s, r["chunk_s"])]
    out = _pcts(lags)
    out["max_ms"] = float(max(lags) * 1000.0) if lags else 0.0
    return out


def run_ours(base: str, qps: float, duration_s: float, tokens: int, tag: str, max_in_flight: int):
    from .locustfile import PointPlan
    from .runner import run_point

    sched = list(arrival_times(qps, duration_s, 1.0, seed=1))
    prompts = [f"{tag}-{i}" for i in range(len(sched))]
    plan = PointPlan(base_url=base, model="timing", prompts=prompts, output_tokens=tokens, schedule_s=sched,
                     max_in_flight=max_in_flight, drain_timeout_s=60.0)
    samples, _ = run_point(plan)
    return samples, prompts


def run_vllm(base: str, qps: float, n: int, tokens: int, tokenizer: str, out: Path, model: str = "timing",
             input_len: int = 8, seed: int = 1, api_key: str | None = None) -> dict:
    """`vllm bench serve` at the same Poisson rate and request count; its per-request TTFTs and ITLs."""
    cmd = [sys.executable, "-m", "sparse24.serve_app.vllm_cli", "bench", "serve", "--backend", "openai",
           "--base-url", base, "--endpoint", "/v1/completions", "--model", model, "--tokenizer", tokenizer,
           "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(tokens),
           "--num-prompts", str(n), "--request-rate", f"{qps:.4f}", "--ignore-eos", "--seed", str(seed),
           "--disable-tqdm", "--save-result", "--save-detailed", "--result-dir", str(out.parent),
           "--result-filename", out.name, "--ready-check-timeout-sec", "0", "--num-warmups", "0"]
    env = dict(os.environ, OPENAI_API_KEY=api_key) if api_key else None  # vllm bench serve's bearer token
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"vllm bench serve failed ({p.returncode}): {p.stderr[-1500:]}")
    res = json.loads(out.read_text())
    ttfts = [t for t in res.get("ttfts", []) if t]
    itls = [g for req in res.get("itls", []) for g in req]
    tpots = [(lat - tt) / (o - 1) for lat, tt, o in zip(res.get("latencies", []), res.get("ttfts", []),
                                                      res.get("output_lens", [])) if o and o > 1]
    return {"ttft": _pcts(ttfts), "itl": _pcts(itls), "tpot": _pcts(tpots), "completed": res.get("completed"),
            "raw": res}


def vllm_chunk_lags(res: dict, records: dict[str, dict]) -> dict[str, float]:
    """Chunk lags of vLLM's tool: its requests matched to server records by send time (its `start_times` are
    `time.perf_counter()`, CLOCK_MONOTONIC on Linux, the server's clock): each request takes the first unmatched
    record received after it was sent."""
    recs = sorted((r["received_s"], r["chunk_s"]) for r in records.values())
    starts = sorted(zip(res.get("start_times", []), res.get("ttfts", []), res.get("itls", [])))
    lags, j = [], 0
    for st, ttft, itl in starts:
        while j < len(recs) and recs[j][0] < st:
            j += 1
        if j == len(recs):
            break
        received, chunks = recs[j]
        j += 1
        if not ttft or len(itl) + 1 != len(chunks):
            continue
        client = np.concatenate([[ttft], ttft + np.cumsum(itl)])
        lags += list(client - (np.asarray(chunks) - received))
    out = _pcts(lags)
    out["max_ms"] = float(max(lags) * 1000.0) if lags else 0.0
    return out


def markdown(doc: dict) -> str:
    a = doc["settings"]
    lines = [f"# Load clients against a server of known timing ({doc['date']})", "",
             f"Machine: {doc['machine']['node']}, {doc['machine']['cpus']} CPUs; commit {doc['commit']}. "
             f"Server: first chunk {a['ttft_ms']} ms after receipt, then one every {a['itl_ms']} ms, "
             f"{a['tokens']} tokens per reply; Poisson arrivals for {a['duration_s']} s at the rate that keeps "
             f"C streams open. `truth` = what the server did for the same requests.", "",
             "| C | tool | chunks/s | TTFT p50 (truth) | ITL p50 (truth) | ITL p90 (truth) | TPOT p50 (truth) | "
             "chunk lag p50 / p99 / max |", "|---|---|---|---|---|---|---|---|"]
    for row in doc["rows"]:
        for tool in TOOLS:
            r = row.get(tool)
            if r is None:
                continue
            m, t = r["measured"], r["truth"]
            lag = r.get("chunk_lag_ms")
            lag_s = f"{lag['p50_ms']:.2f} / {lag['p99_ms']:.2f} / {lag['max_ms']:.1f}" if lag else "n/a"
            lines.append(
                f"| {row['concurrency']} | {tool} | {row['chunks_per_s']:.0f} | {m['ttft']['p50_ms']:.2f} "
                f"({t['ttft']['p50_ms']:.2f}) | {m['itl']['p50_ms']:.3f} ({t['itl']['p50_ms']:.3f}) | "
                f"{m['itl']['p90_ms']:.3f} ({t['itl']['p90_ms']:.3f}) | {m['tpot']['p50_ms']:.3f} "
                f"({t['tpot']['p50_ms']:.3f}) | {lag_s} |")
    lines += ["", "ms. Chunk lag: what the client adds to each chunk's time since its request was sent "
              "(client time since send minus server time since receipt; ours matched by prompt, vLLM's tool by "
              "send time on the shared monotonic clock)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Our load client and vllm bench serve vs a server of known timing.")
    ap.add_argument("--concurrency", default="1,16,64", help="comma-separated open streams to aim for")
    ap.add_argument("--tools", default="ours,vllm")
    ap.add_argument("--ttft-ms", type=float, default=20.0)
    ap.add_argument("--itl-ms", type=float, default=5.0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--duration-s", type=float, default=8.0)
    ap.add_argument("--port", type=int, default=8390)
    ap.add_argument("--out", required=True, help="output path without extension")
    a = ap.parse_args(argv)
    conc = [int(c) for c in a.concurrency.split(",") if c.strip()]
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    if not conc or min(conc) < 1:
        ap.error(f"--concurrency needs positive integers, got {a.concurrency!r}")
    if unknown := set(tools) - set(TOOLS):
        ap.error(f"unknown --tools {sorted(unknown)}; choose from {TOOLS}")
    base = f"http://127.0.0.1:{a.port}"
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "sparse24.loadtest.timing_server", "--port", str(a.port),
                               "--ttft-ms", str(a.ttft_ms), "--itl-ms", str(a.itl_ms)], start_new_session=True)
    rows = []
    try:
        for _ in range(100):
            try:
                _get(base + "/v1/models")
                break
            except OSError:
                time.sleep(0.1)
        tok_dir = None
        if "vllm" in tools:
            from ..kernels.tiny_model import build_tokenizer

            tok_dir = tempfile.mkdtemp(prefix="client_check_tok_")
            build_tokenizer(Path(tok_dir), 512)
        per_req_s = (a.ttft_ms + (a.tokens - 1) * a.itl_ms) / 1000.0
        for c in conc:
            qps = c / per_req_s
            row = {"concurrency": c, "qps": qps, "chunks_per_s": qps * a.tokens}
            for tool in tools:
                _get(base + "/truth/reset", "POST")
                if tool == "ours":
                    samples, prompts = run_ours(base, qps, a.duration_s, a.tokens, f"c{c}", max(4 * c, 64))
                    records = _get(base + "/truth")["records"]
                    row["ours"] = {"measured": sample_stats(samples), "truth": truth_stats(records),
                                   "chunk_lag_ms": chunk_lags(samples, prompts, records),
                                   "failed": sum(not s.success for s in samples)}
                else:
                    n = max(1, round(qps * a.duration_s))
                    res = run_vllm(base, qps, n, a.tokens, tok_dir, Path(tok_dir) / f"vllm_c{c}.json")  # raw: MBs
                    records = _get(base + "/truth")["records"]
                    row["vllm"] = {"measured": {k: res[k] for k in _STATS}, "truth": truth_stats(records),
                                   "chunk_lag_ms": vllm_chunk_lags(res["raw"], records),
                                   "completed": res["completed"]}
                print(f"C={c} {tool}: done", flush=True)
            rows.append(row)
    finally:
        server.terminate()
        server.wait(timeout=10)
    prov = run_provenance(" ".join(sys.argv))
    doc = {"date": prov["created"], "commit": prov["git_commit"], "provenance": prov,
           "machine": {"node": prov["hostname"], "cpus": prov["cpu_count"], "python": prov["python"]},
           "versions": prov["versions"], "command": prov["command"],
           "settings": {"ttft_ms": a.ttft_ms, "itl_ms": a.itl_ms, "tokens": a.tokens, "duration_s": a.duration_s},
           "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
