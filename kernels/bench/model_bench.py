"""Model-level benchmark: a Llama-3.1-8B-shaped model, bf16 vs fp8 dense vs our 2:4 sparse fp8, one run.

    python -m sparse24.kernels.bench.model_bench --out DIR            # on the GPU (all sections)
    python -m sparse24.kernels.bench.model_bench --config tiny --device cpu --out DIR   # smoke run

Sections (all variants in the same process, sharing every tensor except the linears):
  single_stream  per seed use case (loadtest/profiles.yaml): prefill ms (CUDA graph), decode ms/token
                 measured over `--decode-chunk` greedy steps at the start and at the end of the output
                 (the mean of the two is the mean over the output: step cost is linear in context),
                 total = prefill + (output - 1) x decode  [the whole output is not generated: time]
  throughput     decode tokens/s at each batch size with every sequence at `--context` tokens
  breakdown      per decode step at batch 1 and 32: each linear kind over all layers, timed alone in a
                 CUDA graph (fp8: quant and GEMM apart), the rest (attention, norms, RoPE, LM head...) by
                 difference; plus a torch.profiler table of one eager step (scopes and top kernels)
Writes DIR/<stem>.json as it goes, then <stem>.md and <stem>.png (model_report.py).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

from . import model_checks, model_report
from .model_linears import VARIANTS, Fp8DenseLinear
from .model_llama import KVCache, ModelArgs, build_variants, random_weights
from .model_timing import DecodeStep, GraphFn, PrefillStep, median_ms
from . import model_kernels

PROFILER_SCOPES = ("embed", "norm", "linear.qkv", "rope_cache", "attention", "linear.o", "linear.gate_up",
                   "silu_mul", "linear.down", "lm_head", "fp8.quant", "fp8.gemm", "sparse_fp8.op")


def _load_profiles(scale: str) -> dict[str, tuple[int, int]]:
    from sparse24.loadtest.profiles import load_profiles

    ps = load_profiles()
    return {n: (p.prompt_tokens, p.output_tokens) for n in ps.profiles for p in [ps.get(n, scale)]}


def _meta(args, device) -> dict:
    meta = {"date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", __spec__.name if __spec__ else __name__] + sys.argv[1:]),
            "git_commit": os.environ.get("SPARSE24_GIT_COMMIT", "unknown"), "host": platform.node(),
            "python": platform.python_version(), "torch": torch.__version__,
            "triton": getattr(model_kernels.triton, "__version__", None), "device": str(device)}
    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(device)
        meta.update(gpu=p.name, sm_count=p.multi_processor_count, gpu_mem_gib=round(p.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
        try:
            meta["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            meta["driver"] = None
    else:
        meta["gpu"] = "cpu"
    return meta


class Bench:
    def __init__(self, opts):
        self.o = opts
        self.dev = torch.device(opts.device)
        self.args = ModelArgs.llama_31_8b() if opts.config == "llama-3.1-8b" else ModelArgs.tiny()
        self.profiles = _load_profiles("full" if opts.config == "llama-3.1-8b" else "tiny")
        if opts.profiles:
            self.profiles = {k: v for k, v in self.profiles.items() if k in opts.profiles.split(",")}
        self.batches = [int(b) for b in opts.batches.split(",")]
        self.variants = opts.variants.split(",")
        self.graphs = not opts.no_graphs
        max_seq = max([p + o for p, o in self.profiles.values()] + [opts.context]) + opts.decode_chunk + 8
        self.single_seq = max(p + o for p, o in self.profiles.values()) + 8
        self.out = Path(opts.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.result = {"meta": _meta(opts, self.dev), "model": vars(self.args),
                       "settings": {k: v for k, v in vars(opts).items()}, "profiles": self.profiles}
        self._log(f"building {self.variants} ({opts.config}) on {self.dev}")
        self.weights = random_weights(self.args, self.dev, seed=opts.seed)
        self.models = build_variants(self.args, self.weights, self.variants, max_seq)
        self.result["sparse_backend"] = sorted({m.backend for m in self.models["sparse_fp8"].linears()["qkv"]}) \
            if "sparse_fp8" in self.models else None
        self.result["weight_gib"] = {v: round(self._linear_bytes(m) / 2**30, 2) for v, m in self.models.items()}
        self.result["shared_weight_gib"] = round(sum(t.numel() * t.element_size() for t in (
            self.weights.embed, self.weights.lm_head)) / 2**30, 2)
        self._save()

    @staticmethod
    def _linear_bytes(model) -> int:
        total = 0
        for mods in model.linears().values():
            for m in mods:
                packed = getattr(m, "packed", None)
                ts = [packed.values, packed.meta, packed.scale] if packed is not None else \
                    [t for t in (getattr(m, "weight", None), getattr(m, "w_fp8", None), getattr(m, "s_w", None)) if t is not None]
                total += sum(t.numel() * t.element_size() for t in ts)
        return total

    def _log(self, msg: str) -> None:
        print(f"[model_bench {dt.datetime.now():%H:%M:%S}] {msg}", flush=True)

    def _save(self) -> None:
        (self.out / "model_bench.json").write_text(json.dumps(self.result, indent=1))

    def _free(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------------------------ sections
    def checks(self) -> None:
        errs = {**model_checks.check_fused_ops(self.dev), **model_checks.check_linears(self.dev),
                **model_checks.check_model_paths(self.dev)}
        self.result["checks"] = errs
        self._save()
        self._log(f"checks: { {k: f'{v:.1e}' for k, v in errs.items()} }")
        model_checks.assert_close_enough(errs)

    def single_stream(self) -> None:
        res = self.result.setdefault("single_stream", {})
        cache = KVCache(self.args, 1, self.single_seq, self.dev)
        steps = {}
        for v in self.variants:
            steps[v] = DecodeStep(self.models[v], cache, self.graphs)
        for name, (p, o) in self.profiles.items():
            for v in self.variants:
                pre = PrefillStep(self.models[v], cache, p, self.graphs)
                prefill_ms = pre.ms(reps=self.o.prefill_reps)
                pre.step.close()
                del pre
                self._free()
                n = min(self.o.decode_chunk, max(o - 1, 1))
                d_start = steps[v].ms_per_token(p, n)
                d_end = steps[v].ms_per_token(p + o - n, n) if o - 1 > n else d_start
                per_tok = (d_start + d_end) / 2
                res.setdefault(name, {})[v] = dict(
                    prompt_tokens=p, output_tokens=o, prefill_ms=prefill_ms, decode_ms_per_token=per_tok,
                    decode_ms_first=d_start, decode_ms_last=d_end, decode_steps_timed=n,
                    total_ms=prefill_ms + (o - 1) * per_tok)
                self._log(f"single {name:22s} {v:10s} prefill {prefill_ms:8.2f} ms  decode {per_tok:6.3f} ms/tok")
                self._save()
        for s in steps.values():
            s.step.close()
        del steps, cache
        self._free()

    def throughput(self) -> None:
        res = self.result.setdefault("throughput", {})
        bd = self.result.setdefault("breakdown", {})
        for b in self.batches:
            try:
                cache = KVCache(self.args, b, self.o.context + self.o.decode_chunk + 8, self.dev)
            except torch.cuda.OutOfMemoryError as e:
                res[str(b)] = {"error": f"OOM allocating the KV cache: {e}"}
                continue
            for v in self.variants:
                step = DecodeStep(self.models[v], cache, self.graphs)
                ms = step.ms_per_token(self.o.context, self.o.throughput_steps)
                res.setdefault(str(b), {})[v] = dict(step_ms=ms, tokens_per_s=b * 1e3 / ms, context=self.o.context)
                self._log(f"throughput B={b:4d} {v:10s} {ms:7.3f} ms/step  {b * 1e3 / ms:9.1f} tok/s")
                if b in self.o.breakdown_batches:
                    bd.setdefault(str(b), {})[v] = self._breakdown(v, b, ms, step)
                step.step.close()
                del step
                self._save()
            del cache
            self._free()

    def _breakdown(self, variant: str, batch: int, step_ms: float, step: DecodeStep) -> dict:
        """Linear kinds over all layers, each alone in a graph; the rest by difference; profiler tables."""
        model, a = self.models[variant], self.args
        g = torch.Generator(device="cpu").manual_seed(1)
        out = {"step_ms": step_ms, "graph_ms": {}}
        for kind, mods in model.linears().items():
            x = torch.randn(batch, mods[0].in_features, generator=g).to(self.dev, torch.bfloat16)
            out["graph_ms"][kind] = self._graph_ms(lambda mods=mods, x=x: [m(x) for m in mods])
            if isinstance(mods[0], Fp8DenseLinear):
                xq, sx = model_kernels.quantize_per_token_fp8(x)
                out["graph_ms"][kind + ".quant"] = self._graph_ms(
                    lambda mods=mods, x=x: [model_kernels.quantize_per_token_fp8(x) for _ in mods])
                out["graph_ms"][kind + ".gemm"] = self._graph_ms(lambda mods=mods, xq=xq, sx=sx: [
                    torch._scaled_mm(xq, m.w_fp8.t(), scale_a=sx, scale_b=m.s_w, out_dtype=torch.bfloat16,
                                     use_fast_accum=True) for m in mods] if self.dev.type == "cuda" else None)
        xh = torch.randn(batch, a.dim, generator=g).to(self.dev, torch.bfloat16)
        out["graph_ms"]["lm_head"] = self._graph_ms(lambda: F.linear(xh, self.weights.lm_head))
        linear_ms = sum(v for k, v in out["graph_ms"].items() if "." not in k)
        out["graph_ms"]["other"] = step_ms - linear_ms
        if self.o.profile:
            out["profiler"] = self._profile(step)
        return out

    def _graph_ms(self, fn) -> float:
        gf = GraphFn(fn, self.dev, self.graphs)
        ms = median_ms(gf, self.dev, reps=5, warmup=1, calls=3)
        gf.close()
        return ms

    def _profile(self, step: DecodeStep, steps: int = 3) -> dict:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.dev.type == "cuda" else [])
        step.set_position(self.o.context)
        step.step.fn()  # eager warm-up
        with profile(activities=acts) as prof:
            for _ in range(steps):
                step.set_position(self.o.context)
                step.step.fn()
            if self.dev.type == "cuda":
                torch.cuda.synchronize()
        rows = prof.key_averages()

        def dev_us(r):
            return getattr(r, "device_time_total", getattr(r, "cuda_time_total", 0.0)) / steps

        scopes = {r.key: dev_us(r) for r in rows if r.key in PROFILER_SCOPES}
        kernels = sorted(((r.key, dev_us(r), r.count / steps) for r in rows
                          if getattr(r, "self_device_time_total", 0) > 0 and r.key not in PROFILER_SCOPES
                          and not r.key.startswith("aten::")), key=lambda t: -t[1])
        return {"scope_device_us": scopes, "top_kernels": [dict(name=n[:120], device_us=u, calls=c)
                                                           for n, u, c in kernels[:20]],
                "kernel_device_us_total": sum(u for _, u, _ in kernels)}

    def run(self) -> Path:
        sections = self.o.sections.split(",")
        if "checks" in sections:
            self.checks()
        if "single" in sections:
            self.single_stream()
        if "throughput" in sections:
            self.throughput()
        stem = model_report.result_stem(self.result)
        final = self.out / f"{stem}.json"
        (self.out / "model_bench.json").rename(final)
        model_report.write_report(final)
        self._log(f"wrote {final} (+ .md, .png)")
        return final


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default="llama-3.1-8b", choices=["llama-3.1-8b", "tiny"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--sections", default="checks,single,throughput")
    p.add_argument("--profiles", default="", help="comma list of profile names (default: all)")
    p.add_argument("--batches", default="1,8,32,64,128")
    p.add_argument("--breakdown-batches", dest="breakdown_batches", default="1,32",
                   type=lambda s: [int(b) for b in s.split(",") if b])
    p.add_argument("--context", type=int, default=1024, help="tokens per sequence for the throughput section")
    p.add_argument("--decode-chunk", dest="decode_chunk", type=int, default=32,
                   help="decode steps timed at each end of a profile's output")
    p.add_argument("--throughput-steps", dest="throughput_steps", type=int, default=16)
    p.add_argument("--prefill-reps", dest="prefill_reps", type=int, default=5)
    p.add_argument("--no-graphs", dest="no_graphs", action="store_true", help="eager (no CUDA graphs)")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the torch.profiler tables")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    opts = build_parser().parse_args(argv)
    torch.manual_seed(opts.seed)
    with torch.inference_mode():
        Bench(opts).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
