"""Model-level benchmark: a Llama-3.1-8B-shaped model, bf16 vs fp8 dense vs our 2:4 sparse fp8, one run.

    python -m sparse24.loadtest.model_bench.model_bench --out DIR            # on the GPU (all sections)
    python -m sparse24.loadtest.model_bench.model_bench --config tiny --device cpu --out DIR   # smoke run

On the device machine (no install there): carry kernels/_build/libsparse24_fp8.so and the pydantic wheels
(.cache/model_whl: pydantic, pydantic_core, annotated_types, typing_inspection, typing_extensions), then
    mkdir -p /tmp/shim/sparse24 && touch /tmp/shim/sparse24/__init__.py &&
    ln -sfn $PWD/kernels /tmp/shim/sparse24/kernels && ln -sfn $PWD/loadtest /tmp/shim/sparse24/loadtest &&
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .cache/model_whl/*.whl &&
    PYTHONPATH=/tmp/shim:/tmp/site python3 -m sparse24.loadtest.model_bench.model_bench --out $OUT

Sections (all variants in the same process, sharing every tensor except the linears):
  single_stream  per seed use case (loadtest/profiles.yaml): prefill ms (CUDA graph), decode ms/token:
                 outputs <= `--full-decode-max` tokens are generated in full (greedy, graph replays) and
                 timed; longer ones (code completion 1024, RAG 1536) are timed over `--decode-chunk` steps
                 at the start and at the end of the output, whose mean is the mean over the output (step
                 cost is linear in context); total = prefill + (output - 1) x decode
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
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

from ...serve_app.provenance import run_provenance
from . import model_checks, model_report
from .model_linears import FP8_QUANTIZERS, VARIANTS, Fp8DenseLinear, fp8_quantizer_for, quantize_activations_fp8, \
    set_fp8_quantizer
from .model_fused_quant import QuantizedInput
from .model_llama import KVCache, ModelArgs, build_variants, random_weights
from .model_timing import DecodeStep, GraphFn, PrefillStep, median_ms
from . import model_kernels

PROFILER_SCOPES = ("embed", "norm", "linear.qkv", "rope_cache", "attention", "linear.o", "linear.gate_up",
                   "silu_mul", "linear.down", "lm_head", "fp8.quant", "fp8.gemm", "sparse_fp8.op", "sparse_fp8.gemm")


def _load_profiles(scale: str) -> dict[str, tuple[int, int]]:
    from ..profiles import load_profiles

    ps = load_profiles()
    return {n: (p.prompt_tokens, p.output_tokens) for n in ps.profiles for p in [ps.get(n, scale)]}


def _meta(args, device) -> dict:
    prov = run_provenance(" ".join([Path(sys.executable).name, "-m", __spec__.name if __spec__ else __name__]
                                   + sys.argv[1:]))
    meta = {"date_utc": prov["created"], "command": prov["command"], "git_commit": prov["git_commit"] or "unknown",
            "host": prov["hostname"], "python": prov["python"], "torch": torch.__version__, "provenance": prov,
            "triton": getattr(model_kernels.triton, "__version__", None), "device": str(device)}
    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(device)
        meta.update(gpu=p.name, sm_count=p.multi_processor_count, gpu_mem_gib=round(p.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
        meta["driver"] = prov["driver"]
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
        self.out = Path(opts.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.result = {"meta": _meta(opts, self.dev), "model": vars(self.args),
                       "settings": {k: v for k, v in vars(opts).items()}, "profiles": self.profiles}
        self._log(f"building {self.variants} ({opts.config}) on {self.dev}")
        self.weights = random_weights(self.args, self.dev, seed=opts.seed)
        self.models = build_variants(self.args, self.weights, self.variants, max_seq)
        self.result["sparse_backend"] = sorted({m.backend for m in self.models["sparse_fp8"].linears()["qkv"]}) \
            if "sparse_fp8" in self.models else None
        set_fp8_quantizer(opts.fp8_quant)
        self.result["fp8_quantizer"] = fp8_quantizer_for(torch.zeros(1, 64, device=self.dev, dtype=torch.bfloat16))
        self.result["sparse_dispatch"] = self._dispatch_table()
        self.result["weight_gib"] = {v: round(self._linear_bytes(m) / 2**30, 2) for v, m in self.models.items()}
        self.result["shared_weight_gib"] = round(sum(t.numel() * t.element_size() for t in (
            self.weights.embed, self.weights.lm_head)) / 2**30, 2)
        self._save()

    def _dispatch_table(self) -> dict | None:
        """Which GEMM our sparse op picks per (linear kind, M): 'sparse:<config>' or 'dense' (cuBLASLt)."""
        if "sparse_fp8" not in self.models or self.result["sparse_backend"] != ["cutlass"]:
            return None
        from ...kernels import ops
        from ...kernels.settings import settings

        ms = sorted(set(self.batches) | {p for p, _ in self.profiles.values()})
        table = {}
        for kind, mods in self.models["sparse_fp8"].linears().items():
            m0 = mods[0]
            have_dense = m0.packed.gpu_state.dense_t is not None
            try:
                table[f"{kind} {m0.out_features}x{m0.in_features}"] = {
                    str(m): (lambda c: "dense" if c.backend == "dense" else f"sparse:{c.config}")(
                        ops.dispatch_choice(m, m0.out_features, m0.in_features, torch.bfloat16, have_dense)) for m in ms}
            except Exception as e:  # noqa: BLE001 - informational only
                table[kind] = repr(e)
        return {"tuning_table": settings().tuning_table or "default", "choices": table}

    @staticmethod
    def _linear_bytes(model) -> int:
        """Bytes of the tensors the linears keep (sparse: values, metadata, scales, any dense fallback copy)."""
        seen = {}
        for mods in model.linears().values():
            for m in mods:
                packed = getattr(m, "packed", None)
                ts = [getattr(m, a, None) for a in ("weight", "w_fp8", "s_w")]
                if packed is not None:
                    ts += [packed.values, packed.meta, packed.scale] + list(vars(packed.gpu_state).values() if
                                                                           packed.gpu_state is not None else [])
                for t in ts:
                    if isinstance(t, torch.Tensor):
                        seen[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
        return sum(seen.values())

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
        """Fast paths vs references. Broken fused kernels fall back to the torch ops (recorded, slower for
        every variant alike); a broken variant linear is recorded and its numbers must not be trusted."""
        errs = {}
        checks = [("fused_ops", model_checks.check_fused_ops), ("linears", model_checks.check_linears),
                  ("model", model_checks.check_model_paths)]
        if any(v.endswith("_fq") for v in self.variants):
            checks.append(("fused_quant", model_checks.check_fused_quant))
        for name, fn in checks:
            try:
                errs.update(fn(self.dev))
            except Exception as e:  # noqa: BLE001 - recorded and acted on below
                errs[f"{name}_error"] = float("inf")
                self.result.setdefault("errors", {})[f"check_{name}"] = repr(e)[:2000]
                self._log(f"check {name} FAILED: {e!r}")
        self.result["checks"] = errs
        try:
            model_checks.assert_close_enough(errs)
        except AssertionError as e:
            self.result.setdefault("errors", {})["checks"] = str(e)
            fused = ("rms_norm", "silu_mul", "rope_cache", "decode_attention", "quant", "model", "fused_ops")
            if any(k.startswith(fused) and not v <= model_checks.TOL_FP8_GEMM for k, v in errs.items()):
                model_kernels.use_torch_reference(True)
                self.result["fused_kernels"] = "torch reference ops (Triton check failed)"
            self._log(f"CHECKS FAILED: {e}")
        self.result.setdefault("fused_kernels", "triton" if model_kernels.triton is not None else "torch")
        self._log(f"checks: { {k: f'{v:.1e}' for k, v in errs.items()} }")
        self._save()

    def single_stream(self) -> None:
        """Per use case: a batch-1 KV cache sized to prompt + output (attention reads only what it needs),
        then per variant a prefill graph and a decode graph on that cache."""
        res = self.result.setdefault("single_stream", {})
        for name, (p, o) in self.profiles.items():
            cache = KVCache(self.args, 1, p + o + self.o.decode_chunk + 8, self.dev)
            for v in self.variants:
                pre = PrefillStep(self.models[v], cache, p, self.graphs)
                prefill_ms = pre.ms(reps=self.o.prefill_reps)
                pre.step.close()
                del pre
                self._free()
                step = DecodeStep(self.models[v], cache, self.graphs)
                n = min(self.o.decode_chunk, max(o - 1, 1))
                d_start = step.ms_per_token(p, n)
                d_end = step.ms_per_token(p + o - n, n) if o - 1 > n else d_start
                per_tok, method = (d_start + d_end) / 2, "ends"
                if 1 < o - 1 <= self.o.full_decode_max:  # short outputs: time the whole generation once
                    per_tok, method = step.ms_per_token(p, o - 1, reps=1), "full"
                step.step.close()
                del step
                res.setdefault(name, {})[v] = dict(
                    prompt_tokens=p, output_tokens=o, prefill_ms=prefill_ms, decode_ms_per_token=per_tok,
                    decode_method=method, decode_ms_first=d_start, decode_ms_last=d_end, decode_steps_timed=n,
                    total_ms=prefill_ms + (o - 1) * per_tok)
                self._log(f"single {name:22s} {v:10s} prefill {prefill_ms:8.2f} ms  decode {per_tok:6.3f} ms/tok")
                self._save()
            del cache
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
            if model.fuse_quant and kind != "o":  # these linears get pre-quantized input in *_fq variants
                xin = QuantizedInput(*quantize_activations_fp8(x))
                out["graph_ms"][kind] = self._graph_ms(lambda mods=mods, xin=xin: [m(xin) for m in mods])
                continue
            out["graph_ms"][kind] = self._graph_ms(lambda mods=mods, x=x: [m(x) for m in mods])
            if isinstance(mods[0], Fp8DenseLinear):
                xq, sx = quantize_activations_fp8(x)
                out["graph_ms"][kind + ".quant"] = self._graph_ms(
                    lambda mods=mods, x=x: [quantize_activations_fp8(x) for _ in mods])
                if kind == "gate_up":  # the other fused quantizer, for comparison (4096 columns)
                    out["graph_ms"][kind + ".quant_triton"] = self._graph_ms(
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

        def dev_us(r, self_only=False):
            names = ("self_device_time_total", "self_cuda_time_total") if self_only else \
                ("device_time_total", "cuda_time_total")
            return next((getattr(r, n) for n in names if hasattr(r, n)), 0.0) / steps

        scopes = {r.key: dev_us(r) for r in rows if r.key in PROFILER_SCOPES}
        kernels = sorted(((r.key, dev_us(r), r.count / steps) for r in rows
                          if dev_us(r, True) > 0 and r.key not in PROFILER_SCOPES
                          and not r.key.startswith("aten::")), key=lambda t: -t[1])
        return {"scope_device_us": scopes, "top_kernels": [dict(name=n[:120], device_us=u, calls=c)
                                                           for n, u, c in kernels[:20]],
                "kernel_device_us_total": sum(u for _, u, _ in kernels)}

    def run(self) -> Path:
        import traceback

        for name, fn in (("checks", self.checks), ("single", self.single_stream), ("throughput", self.throughput)):
            if name not in self.o.sections.split(","):
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - keep what was measured, report the failure
                tb = traceback.format_exc()
                self.result.setdefault("errors", {})[name] = tb[-3000:]
                self._log(f"section {name} FAILED:\n{tb}")
                self._free()
        self.result["graph_failures"] = GraphFn.failures
        self._save()
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
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma list of bf16, fp8, sparse_fp8 and the fused-quantization experiments fp8_fq, "
                        "sparse_fp8_fq (activation quantization inside RMSNorm / SiLU-and-mul)")
    p.add_argument("--sections", default="checks,single,throughput")
    p.add_argument("--profiles", default="", help="comma list of profile names (default: all)")
    p.add_argument("--batches", default="1,8,32,64,128")
    p.add_argument("--breakdown-batches", dest="breakdown_batches", default="1,32",
                   type=lambda s: [int(b) for b in s.split(",") if b])
    p.add_argument("--context", type=int, default=1024, help="tokens per sequence for the throughput section")
    p.add_argument("--decode-chunk", dest="decode_chunk", type=int, default=32,
                   help="decode steps timed at each end of a profile's output")
    p.add_argument("--full-decode-max", dest="full_decode_max", type=int, default=256,
                   help="outputs up to this many tokens are generated and timed in full, longer ones by their ends")
    p.add_argument("--throughput-steps", dest="throughput_steps", type=int, default=16)
    p.add_argument("--prefill-reps", dest="prefill_reps", type=int, default=5)
    p.add_argument("--no-graphs", dest="no_graphs", action="store_true", help="eager (no CUDA graphs)")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the torch.profiler tables")
    p.add_argument("--fp8-quant", dest="fp8_quant", default="auto", choices=FP8_QUANTIZERS,
                   help="activation quantizer of the fp8 dense baseline (auto: the sparse op's own kernel)")
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
