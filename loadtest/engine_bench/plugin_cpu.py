"""CPU throughput of the plugin: tiny model, 2:4 sparse FP8 (our plugin) vs the same model dense, in vLLM.

    python -m sparse24.loadtest.engine_bench.plugin_cpu [--out bench.json] [--dtype bfloat16] [--compile]

Writes the tiny dense model and its sparse-24-bitmask checkpoint to a temp dir, runs each in its own
vLLM-CPU engine in one process (same settings, timed runs alternating), and reports decode tokens/s for a batch and for a single stream, the
sparse/dense ratio (median of per-pair ratios; issue 5 asks for >= 0.5) and the machine. Not a test: numbers depend on the machine load.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ...serve_app.provenance import run_provenance

# Workloads: (name, concurrent prompts, prompt tokens, generated tokens per prompt).
WORKLOADS = (("batch8", 8, 64, 64), ("single", 1, 64, 64))
REPEATS = 5  # timed repetitions after one warm-up; medians are reported


def _engines(models: dict[str, str], dtype: str, compile_: bool) -> dict:
    """Runs in a child process: both engines side by side, timed runs alternating between them.

    Alternating dense / sparse repeat by repeat keeps slow drifts of a shared machine's load from
    favouring one side; the median of each side and of the per-pair ratios are reported.
    """
    from vllm import LLM, SamplingParams

    llms, out = {}, {}
    for label, model in models.items():
        t0 = time.perf_counter()
        llms[label] = LLM(model=model, dtype=dtype, max_model_len=512, enforce_eager=not compile_, seed=0,
                          max_num_seqs=8)
        out[label] = {"load_s": time.perf_counter() - t0, "workloads": {}}
    for name, prompts, prompt_len, gen in WORKLOADS:
        batch = [{"prompt_token_ids": [(7 * i + j) % 500 + 3 for j in range(prompt_len)]} for i in range(prompts)]
        params = SamplingParams(temperature=0.0, max_tokens=gen, ignore_eos=True)
        rates: dict[str, list[float]] = {label: [] for label in llms}
        for llm in llms.values():
            llm.generate(batch, params, use_tqdm=False)  # warm-up
        for _ in range(REPEATS):
            for label, llm in llms.items():
                t = time.perf_counter()
                res = llm.generate(batch, params, use_tqdm=False)
                rates[label].append(sum(len(r.outputs[0].token_ids) for r in res) / (time.perf_counter() - t))
        for label in llms:
            out[label]["workloads"][name] = {
                "tokens_per_s": sorted(rates[label])[REPEATS // 2], "all": rates[label],
                "prompts": prompts, "prompt_tokens": prompt_len, "generated_tokens": gen}
    return out


def _run_child(models: dict[str, Path], dtype: str, compile_: bool) -> dict:
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    cmd = [sys.executable, "-m", "sparse24.loadtest.engine_bench.plugin_cpu", "--child",
           json.dumps({k: str(v) for k, v in models.items()}), "--dtype", dtype] + (["--compile"] if compile_ else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark engines failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("vllm_plugin_cpu_bench.json"))
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--compile", action="store_true", help="let vLLM torch.compile the model (default: eager)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_engines(json.loads(args.child), args.dtype, args.compile)))
        return 0

    from ...kernels.checkpoint import compress_checkpoint
    from ...kernels.tiny_model import TinyLlamaSpec, make_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        dense = make_tiny_llama(Path(tmp) / "dense", TinyLlamaSpec(dtype=args.dtype))
        sparse = Path(tmp) / "sparse"
        compress_checkpoint(dense, sparse, sparsity_format="sparse-24-bitmask", progress=False)
        results = _run_child({"dense": dense, "sparse_plugin": sparse}, args.dtype, args.compile)
    ratios = {}
    for w, *_ in WORKLOADS:
        pairs = [s / d for s, d in zip(results["sparse_plugin"]["workloads"][w]["all"], results["dense"]["workloads"][w]["all"])]
        ratios[w] = sorted(pairs)[len(pairs) // 2]  # median of per-pair ratios
    report = {
        "what": "vLLM-CPU decode tokens/s, tiny Llama: 2:4 sparse FP8 via sparse24 plugin vs dense",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "sparse24.loadtest.engine_bench.plugin_cpu"]
                            + (argv if argv is not None else sys.argv[1:])),
        "dtype": args.dtype, "compile": args.compile, "provenance": run_provenance("python -m sparse24.loadtest.engine_bench.plugin_cpu " + " ".join(argv if argv is not None else sys.argv[1:])),
        "results": results, "sparse_over_dense": ratios,
    }
    args.out.write_text(json.dumps(report, indent=2))
    for w, r in ratios.items():
        d = results["dense"]["workloads"][w]["tokens_per_s"]
        s = results["sparse_plugin"]["workloads"][w]["tokens_per_s"]
        print(f"{w:8s} dense {d:8.1f} tok/s   sparse-fp8 plugin {s:8.1f} tok/s   ratio {r:.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
