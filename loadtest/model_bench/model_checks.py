"""Correctness checks of the benchmark model's fast paths against their references, on any device.

Used by the GPU tests (tests/loadtest/model_bench/test_model_bench_gpu.py), by `model_bench --check` before timing,
and on CPU under TRITON_INTERPRET=1. Each check returns {name: relative error} ||out - ref|| / ||ref||
on fresh random inputs; `assert_close_enough` raises naming the op that is off.
"""
from __future__ import annotations

import torch

from ...kernels import reference
from . import model_kernels as K
from .model_linears import make_linear, prune_2of4_magnitude

# Tolerances (relative Frobenius error): bf16 outputs rounded once differ by ~2^-9 per element.
TOL_BF16 = 1e-2
TOL_FP8_GEMM = 2e-2  # fp8 GEMM vs the fp32 reference: summation order + bf16 output rounding


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.float(), ref.float()
    if not bool(torch.isfinite(out).all()):
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def check_fused_ops(device, dtype=torch.bfloat16, seed: int = 0) -> dict[str, float]:
    """Triton kernels vs torch references for norm, silu_mul, rope+cache, decode attention, quantization."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device=device, dtype=dtype)

    errs = {}
    x, r, w = rnd(5, 320), rnd(5, 320), rnd(320, scale=0.1) + 1
    K.use_torch_reference(True)
    ref_y, ref_r = K.rms_norm(x, w, 1e-5, r)
    ref_y0 = K.rms_norm(x, w, 1e-5)
    K.use_torch_reference(False)
    y, r2 = K.rms_norm(x, w, 1e-5, r)
    errs["rms_norm_add"] = max(_rel(y, ref_y), _rel(r2, ref_r))
    errs["rms_norm"] = _rel(K.rms_norm(x, w, 1e-5), ref_y0)

    gu = rnd(3, 2 * 1100)
    errs["silu_mul"] = _rel(K.silu_mul(gu), K.silu_mul_torch(gu))

    b, t, h, kvh, hd, s = 2, 3, 8, 2, 64, 600
    cos, sin = K.rope_tables(hd, s, 10000.0, device)
    qkv = rnd(b * t, (h + 2 * kvh) * hd)
    pos = torch.tensor([5, 6, 7, 100, 101, 599], dtype=torch.int32, device=device)
    caches = [rnd(b, kvh, s, hd) for _ in range(2)]
    ref_caches = [c.clone() for c in caches]
    q = K.rope_and_cache(qkv, pos, t, cos, sin, caches[0], caches[1], h, kvh)
    q_ref = K.rope_and_cache_torch(qkv, pos, t, cos, sin, ref_caches[0], ref_caches[1], h, kvh)
    errs["rope_cache"] = max(_rel(q, q_ref), _rel(caches[0], ref_caches[0]), _rel(caches[1], ref_caches[1]))

    seq_lens = torch.tensor([1, 555], dtype=torch.int32, device=device)  # one split, several splits
    qd = rnd(b, h, hd)
    out = K.decode_attention(qd, caches[0], caches[1], seq_lens)
    errs["decode_attention"] = _rel(out, K.decode_attention_torch(qd, caches[0], caches[1], seq_lens))

    xa = rnd(4, 448, scale=3.0)
    xq, sx = K.quantize_per_token_fp8(xa)
    xq_ref, sx_ref = reference.quantize_per_token_fp8(xa.cpu())
    errs["quant_scale"] = _rel(sx.cpu(), sx_ref)
    errs["quant_dequant"] = _rel((xq.float() * sx).cpu(), xq_ref.float() * sx_ref)
    return errs


def check_linears(device, m_values=(1, 16), n: int = 256, k: int = 512, seed: int = 0) -> dict[str, float]:
    """Each variant's linear vs the fp32 reference of the same math (bf16 x bf16, or the fp8 reference)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = (torch.randn(n, k, generator=g) * 0.05).to(device=device, dtype=torch.bfloat16)
    errs = {}
    for m in m_values:
        x = torch.randn(m, k, generator=g).to(device=device, dtype=torch.bfloat16)
        errs[f"bf16_m{m}"] = _rel(make_linear(w, "bf16")(x), x.float() @ w.float().t())
        w8, s8 = reference.quantize_weight_per_channel_fp8(w.cpu())
        ref = reference.sparse_fp8_linear_reference(x.cpu(), w8, s8, None, torch.float32)
        errs[f"fp8_m{m}"] = _rel(make_linear(w, "fp8")(x).cpu(), ref)
        w8s, s8s = reference.quantize_weight_per_channel_fp8(prune_2of4_magnitude(w).cpu())
        ref_s = reference.sparse_fp8_linear_reference(x.cpu(), w8s, s8s, None, torch.float32)
        errs[f"sparse_fp8_m{m}"] = _rel(make_linear(w, "sparse_fp8")(x).cpu(), ref_s)
    return errs


def check_model_paths(device, seed: int = 0) -> dict[str, float]:
    """Tiny bf16 model: the fused-kernel forward (prefill + 3 decode steps) vs the all-torch forward."""
    from .model_llama import KVCache, ModelArgs, Transformer, random_weights

    args = ModelArgs.tiny()
    weights = random_weights(args, device, seed=seed)
    model = Transformer(args, weights, "bf16", 64)
    tokens = torch.randint(0, args.vocab_size, (2, 9), generator=torch.Generator().manual_seed(seed)).to(device)
    outs = {}
    for ref in (True, False):
        K.use_torch_reference(ref)
        try:
            cache = KVCache(args, 2, 64, device, fill="zeros")
            logits = [model.prefill(tokens[:, :6], cache)]
            for t in range(6, 9):
                logits.append(model.decode(tokens[:, t], torch.full((2,), t, dtype=torch.int32, device=device), cache))
            outs[ref] = torch.stack(logits)
        finally:
            K.use_torch_reference(False)
    return {"model_fused_vs_torch": _rel(outs[False], outs[True])}


def check_fused_quant(device, seed: int = 0) -> dict[str, float]:
    """Norm+quant and SiLU+quant kernels vs their torch compositions; tiny `*_fq` models vs unfused ones."""
    from . import model_fused_quant as FQ
    from .model_llama import KVCache, ModelArgs, build_variants, random_weights

    g = torch.Generator(device="cpu").manual_seed(seed)
    x, r = (torch.randn(3, 4096, generator=g).to(device, torch.bfloat16) for _ in range(2))
    w = (torch.randn(4096, generator=g) * 0.1 + 1).to(device, torch.bfloat16)
    gu = torch.randn(3, 2 * 1100, generator=g).to(device, torch.bfloat16)
    errs = {}
    for name, got, ref in (("norm_quant", FQ.rms_norm_quant(x, w, 1e-5, r)[0], FQ.rms_norm_quant_torch(x, w, 1e-5, r)[0]),
                           ("silu_quant", FQ.silu_mul_quant(gu), FQ.silu_mul_quant_torch(gu))):
        errs[f"fq_{name}_scale"] = _rel(got.s_x, ref.s_x)
        errs[f"fq_{name}_dequant"] = _rel(got.xq.float() * got.s_x, ref.xq.float() * ref.s_x)
    args = ModelArgs.tiny()
    models = build_variants(args, random_weights(args, device, seed=seed), ("fp8", "sparse_fp8", "fp8_fq", "sparse_fp8_fq"), 64)
    tokens = torch.randint(0, args.vocab_size, (2, 8), generator=g).to(device)
    outs = {}
    for v, m in models.items():
        cache = KVCache(args, 2, 64, device, fill="zeros")
        logits = [m.prefill(tokens[:, :6], cache)]
        for t in range(6, 8):
            logits.append(m.decode(tokens[:, t], torch.full((2,), t, dtype=torch.int32, device=device), cache))
        outs[v] = torch.stack(logits)
    errs["fq_model_fp8"] = _rel(outs["fp8_fq"], outs["fp8"])
    errs["fq_model_sparse_fp8"] = _rel(outs["sparse_fp8_fq"], outs["sparse_fp8"])
    return errs


def assert_close_enough(errs: dict[str, float]) -> None:
    """Raise AssertionError naming every check above its tolerance."""
    bad = {k: v for k, v in errs.items()
           if not v <= (TOL_FP8_GEMM if k.startswith(("fp8", "sparse", "quant_dequant", "fq_")) else TOL_BF16)}
    if bad:
        raise AssertionError(f"fast path differs from its reference: {bad}")
