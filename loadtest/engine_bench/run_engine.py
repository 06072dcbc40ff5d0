"""One vLLM engine, one model variant, several measurements; results to one JSON (the seed's Tables 3 and 4).

    python -m sparse24.loadtest.engine_bench.run_engine --variant sparse24 --model DIR --out OUT_DIR \
        [--jobs logprobs latency throughput] [--seqs SEQS.json] [--config tables.yaml]

Jobs, each timed like vLLM's own benchmarks and reusing their pieces:
* latency     one request at a time (`vllm bench latency` with batch size 1): random prompt token ids of the
              use case's length, `ignore_eos`, exactly `output_tokens` generated; warm-up, then N iterations.
* throughput  every request of a use case submitted at once (`vllm bench throughput`: its `_run_vllm_requests`
              over `SampleRequest`s): elapsed seconds, requests/s, output and total tokens/s.
* logprobs    teacher-forced prompt log-probabilities of given sequences (numerics check, see logprobs.py).
* profile     torch.profiler over one single-stream request (512 prompt / 64 output tokens): where a decode
              step's time goes, by kernel. Needs the engine in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0,
              set by this job), so run it as its own invocation, not beside timed jobs.
* greedy      greedy continuations (32 tokens) of the first 8 tokens of each sequence: the reference then
              scores them, to tell near-ties from real differences where greedy paths part.
The engine is built once per variant (load + torch.compile + CUDA graph capture are minutes on 8B) with the
same arguments for every variant (tables.yaml `engine`); engine code runs under `__main__` (vLLM spawns).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .tables_config import TablesConfig, load_tables_config

JOBS = ("logprobs", "greedy", "latency", "throughput", "profile")
PROFILE_PROMPT, PROFILE_TOKENS = 512, 64
GREEDY_PROMPT_TOKENS, GREEDY_NEW_TOKENS = 8, 32


def _prompts(llm, n: int, length: int, seed: int) -> list[dict]:
    # Token ids below 10000 like `vllm bench latency` (random ids: content is irrelevant with ignore_eos),
    # and below the model's vocabulary (the tiny model has ~1000 tokens).
    rng = np.random.default_rng(seed)
    high = min(10000, llm.llm_engine.model_config.get_vocab_size())
    return [{"prompt_token_ids": rng.integers(3, high, size=length).tolist()} for _ in range(n)]


def run_latency(llm, cfg: TablesConfig, log) -> dict:
    from vllm import SamplingParams

    out = {}
    for uc in cfg.use_cases:
        prompt = _prompts(llm, 1, uc.prompt_tokens, seed=1)
        params = SamplingParams(temperature=1.0, top_p=1.0, ignore_eos=True, max_tokens=uc.output_tokens)
        for _ in range(cfg.latency.warmup_iters):
            llm.generate(prompt, SamplingParams(ignore_eos=True, max_tokens=cfg.latency.warmup_tokens),
                         use_tqdm=False)
        times = []
        for _ in range(cfg.latency.iters):
            t0 = time.perf_counter()
            res = llm.generate(prompt, params, use_tqdm=False)
            times.append(time.perf_counter() - t0)
            assert len(res[0].outputs[0].token_ids) == uc.output_tokens
        out[uc.name] = {"prompt_tokens": uc.prompt_tokens, "output_tokens": uc.output_tokens, "latencies_s": times,
                        "median_s": float(np.median(times))}
        log(f"latency {uc.name}: {out[uc.name]['median_s']:.3f} s ({len(times)} iters)")
    return out


def run_throughput(llm, cfg: TablesConfig, log) -> dict:
    from vllm.benchmarks.datasets import SampleRequest
    from vllm.benchmarks.throughput import _run_vllm_requests

    def requests(n, uc, seed):
        return [SampleRequest(prompt=p, prompt_len=uc.prompt_tokens, expected_output_len=uc.output_tokens)
                for p in _prompts(llm, n, uc.prompt_tokens, seed)]

    out = {}
    for uc in cfg.use_cases:
        n = uc.throughput_requests
        warm = requests(min(n, cfg.throughput.warmup_requests), uc, seed=2)
        for r in warm:
            r.expected_output_len = min(uc.output_tokens, cfg.throughput.warmup_tokens)
        _run_vllm_requests(llm, warm, n=1, disable_detokenize=True, do_profile=False, prequeue_requests=False,
                           enable_lora=False)
        elapsed, outputs = _run_vllm_requests(llm, requests(n, uc, seed=3), n=1, disable_detokenize=False,
                                              do_profile=False, prequeue_requests=False, enable_lora=False)
        out_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        assert out_tokens == n * uc.output_tokens, f"{uc.name}: {out_tokens} tokens, expected {n * uc.output_tokens}"
        total = out_tokens + n * uc.prompt_tokens
        out[uc.name] = {"requests": n, "prompt_tokens": uc.prompt_tokens, "output_tokens": uc.output_tokens,
                        "elapsed_s": elapsed, "requests_per_s": n / elapsed, "output_tokens_per_s": out_tokens / elapsed,
                        "total_tokens_per_s": total / elapsed}
        log(f"throughput {uc.name}: {n} requests in {elapsed:.2f} s = {out_tokens / elapsed:,.0f} output tok/s")
    return out


def run_logprobs(llm, seqs_path: Path, log) -> dict:
    from .logprobs import scores_to_json, vllm_scores

    seqs = json.loads(Path(seqs_path).read_text())["sequences"]
    scores = vllm_scores(llm, seqs)
    log(f"logprobs: {sum(len(s.actual) for s in scores)} positions scored")
    return {"sequences": str(seqs_path), "scores": scores_to_json(scores)}


def run_greedy(llm, seqs_path: Path, log) -> dict:
    from vllm import SamplingParams

    seqs = json.loads(Path(seqs_path).read_text())["sequences"]
    prompts = [{"prompt_token_ids": s[:GREEDY_PROMPT_TOKENS]} for s in seqs]
    params = SamplingParams(temperature=0.0, max_tokens=GREEDY_NEW_TOKENS, ignore_eos=True)
    outs = llm.generate(prompts, params, use_tqdm=False)
    full = [p["prompt_token_ids"] + list(o.outputs[0].token_ids) for p, o in zip(prompts, outs)]
    log(f"greedy: {len(full)} continuations of {GREEDY_NEW_TOKENS} tokens")
    return {"prompt_tokens": GREEDY_PROMPT_TOKENS, "sequences": full}


def run_profile(llm, log, top: int = 25) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile
    from vllm import SamplingParams

    prompt = _prompts(llm, 1, PROFILE_PROMPT, seed=4)
    params = SamplingParams(ignore_eos=True, max_tokens=PROFILE_TOKENS)
    llm.generate(prompt, params, use_tqdm=False)  # warm
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        llm.generate(prompt, params, use_tqdm=False)
    wall = time.perf_counter() - t0
    device = torch.cuda.is_available()
    rows = []
    for e in prof.key_averages():
        t = (e.device_time_total if device else e.self_cpu_time_total) / 1e3  # ms
        if t > 0:
            rows.append({"name": e.key[:160], "calls": e.count, "total_ms": round(t, 3)})
    rows.sort(key=lambda r: -r["total_ms"])
    total = sum(r["total_ms"] for r in rows)
    log(f"profile: {wall:.3f} s wall, {total:.1f} ms {'device' if device else 'cpu self'} time in {len(rows)} ops")
    return {"prompt_tokens": PROFILE_PROMPT, "output_tokens": PROFILE_TOKENS, "wall_s": wall,
            "time_kind": "device" if device else "cpu_self", "total_ms": total, "top": rows[:top]}


def _engine_meta(llm, load_s: float) -> dict:
    vc = llm.llm_engine.vllm_config
    sched, comp = vc.scheduler_config, vc.compilation_config
    return {"load_s": round(load_s, 1), "quant_config": type(vc.quant_config).__name__ if vc.quant_config else None,
            "max_num_seqs": sched.max_num_seqs, "max_num_batched_tokens": sched.max_num_batched_tokens,
            "cudagraph_mode": str(getattr(comp, "cudagraph_mode", None)),
            "compilation_mode": str(getattr(comp, "mode", getattr(comp, "level", None))),
            "attention_backend": os.environ.get("VLLM_ATTENTION_BACKEND", "auto"),
            "sparse24_backend": os.environ.get("SPARSE24_BACKEND", "auto")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", required=True, help="label of the model variant, e.g. bf16, fp8, sparse24")
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--out", required=True, help="output folder; writes engine_<variant>.json there")
    p.add_argument("--jobs", nargs="+", choices=JOBS, default=["latency", "throughput"])
    p.add_argument("--seqs", help="sequences JSON for the logprobs job ({'sequences': [[ids...], ...]})")
    p.add_argument("--config", help="tables YAML (default: the bundled tables.yaml)")
    p.add_argument("--use-cases", nargs="*", help="only these use cases (default: all in the config)")
    p.add_argument("--scale", default="full", help="use-case token scale from loadtest/profiles.yaml (tiny: small models)")
    p.add_argument("--max-requests", type=int, help="cap throughput_requests (smoke runs)")
    p.add_argument("--engine-arg", action="append", default=[], metavar="KEY=JSON",
                   help="override an engine argument (same for every variant, e.g. enforce_eager=true)")
    args = p.parse_args(argv)
    if {"logprobs", "greedy"} & set(args.jobs) and not args.seqs:
        p.error("--jobs logprobs/greedy need --seqs")
    if not Path(args.model, "config.json").is_file():
        p.error(f"--model {args.model}: no config.json there")
    cfg = load_tables_config(args.config, scale=args.scale)
    if args.use_cases:
        cfg = cfg.only(args.use_cases)
    if args.max_requests:
        cfg = cfg.model_copy(update={"use_cases": [u.model_copy(update={"throughput_requests": min(
            u.throughput_requests, args.max_requests)}) for u in cfg.use_cases]})
    engine_kwargs = dict(cfg.engine)
    for item in args.engine_arg:
        key, _, raw = item.partition("=")
        engine_kwargs[key] = json.loads(raw)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / f"engine_{args.variant}.json"

    def log(msg: str) -> None:
        print(f"[{args.variant}] {msg}", flush=True)

    if "profile" in args.jobs:
        if len(args.jobs) > 1:
            p.error("--jobs profile runs alone (it puts the engine in this process)")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        out_path = out_dir / f"profile_{args.variant}.json"

    from vllm import LLM

    from ..report import run_metadata

    meta = run_metadata(" ".join(sys.argv), [])
    t0 = time.perf_counter()
    llm = LLM(model=args.model, **engine_kwargs)
    load_s = time.perf_counter() - t0
    log(f"engine ready in {load_s:.0f} s")
    result = {"variant": args.variant, "model": args.model, "meta": meta, "engine_kwargs": engine_kwargs,
              "engine": _engine_meta(llm, load_s), "config": cfg.model_dump()}
    runners = {"logprobs": lambda: run_logprobs(llm, args.seqs, log), "greedy": lambda: run_greedy(llm, args.seqs, log),
               "profile": lambda: run_profile(llm, log), "latency": lambda: run_latency(llm, cfg, log),
               "throughput": lambda: run_throughput(llm, cfg, log)}
    for job in JOBS:  # fixed order: cheap numerics first, so a later failure keeps them
        if job in args.jobs:
            result[job] = runners[job]()
            out_path.write_text(json.dumps(result, indent=1))
    log(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
