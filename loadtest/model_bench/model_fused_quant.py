"""Experiment: per-token FP8 activation quantization fused into the op that produces the activation.

The baseline variants quantize inside each fp8/sparse linear (one extra kernel per linear, 4 per layer:
~0.43 ms of a 3.5 ms sparse decode step on the H100). vLLM's compile passes fuse that quantization into
the preceding RMSNorm and SiLU-and-mul; this module does the same for the `*_fq` variants:

    rms_norm_quant(x, w, eps, residual) -> (QuantizedInput(xq, s_x), x + residual)   feeds qkv and gate_up
    silu_mul_quant(gate_up)             -> QuantizedInput(xq, s_x)                   feeds down
The o projection keeps its own quantization (its input row spans every attention head).

Same numbers as the unfused path: the normalised (or activated) value is rounded to bf16 first, then
quantized with reference.py's math. The torch references below are that composition.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ...kernels import reference
from . import model_kernels as K
from .model_kernels import _next_pow2, _use_triton, triton

if triton is not None:
    import triton.language as tl


class QuantizedInput(NamedTuple):
    """An activation already quantized per token: xq fp8 [M, K], s_x fp32 [M, 1]."""

    xq: torch.Tensor
    s_x: torch.Tensor


def rms_norm_quant_torch(x, w, eps, residual=None):
    out = K.rms_norm_torch(x, w, eps, residual)
    y, res = out if residual is not None else (out, x)
    return QuantizedInput(*reference.quantize_per_token_fp8(y)), res


def silu_mul_quant_torch(gate_up):
    return QuantizedInput(*reference.quantize_per_token_fp8(K.silu_mul_torch(gate_up)))


if triton is not None:

    @triton.jit
    def _quant_row(y, xq_ptr, s_ptr, row, cols, mask, MIN_AMAX: tl.constexpr, FP8_MAX: tl.constexpr):
        amax = tl.max(tl.where(mask, tl.abs(y), 0.0), axis=0)
        scale = tl.maximum(amax, MIN_AMAX) / FP8_MAX
        q = tl.minimum(tl.maximum(tl.math.div_rn(y, scale), -FP8_MAX), FP8_MAX)
        tl.store(xq_ptr + cols, q.to(xq_ptr.dtype.element_ty), mask=mask)
        tl.store(s_ptr + row, scale)

    @triton.jit
    def _rms_norm_quant_kernel(x_ptr, r_ptr, r_out_ptr, w_ptr, xq_ptr, s_ptr, D, eps,
                               MIN_AMAX: tl.constexpr, FP8_MAX: tl.constexpr, HAS_RES: tl.constexpr,
                               BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < D
        x = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
        if HAS_RES:
            r = tl.load(r_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
            s = (x + r).to(r_out_ptr.dtype.element_ty)
            tl.store(r_out_ptr + row * D + cols, s, mask=mask)
            x = s.to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / D + eps)
        y = (x * rstd).to(r_out_ptr.dtype.element_ty).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        y = (w * y).to(r_out_ptr.dtype.element_ty).to(tl.float32)
        _quant_row(y, xq_ptr + row * D, s_ptr, row, cols, mask, MIN_AMAX, FP8_MAX)

    @triton.jit
    def _silu_mul_quant_kernel(gu_ptr, xq_ptr, s_ptr, I, MIN_AMAX: tl.constexpr, FP8_MAX: tl.constexpr,
                               BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < I
        g = tl.load(gu_ptr + row * 2 * I + cols, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(gu_ptr + row * 2 * I + I + cols, mask=mask, other=0.0).to(tl.float32)
        act = (g / (1.0 + tl.exp(-g))).to(gu_ptr.dtype.element_ty).to(tl.float32)
        y = (act * u).to(gu_ptr.dtype.element_ty).to(tl.float32)
        _quant_row(y, xq_ptr + row * I, s_ptr, row, cols, mask, MIN_AMAX, FP8_MAX)


def _warps(block: int) -> int:
    return max(4, min(16, block // 1024))


def rms_norm_quant(x: torch.Tensor, w: torch.Tensor, eps: float, residual: torch.Tensor | None = None):
    """RMSNorm (after adding residual) straight to per-token fp8: (QuantizedInput, new residual)."""
    if not _use_triton(x):
        return rms_norm_quant_torch(x, w, eps, residual)
    m, d = x.shape
    xq = torch.empty((m, d), dtype=reference.FP8_DTYPE, device=x.device)
    s = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    r_out = torch.empty_like(x) if residual is not None else x
    block = _next_pow2(d)
    _rms_norm_quant_kernel[(m,)](x, residual if residual is not None else x, r_out, w, xq, s, d, eps,
                                 MIN_AMAX=reference.FP8_MIN_AMAX, FP8_MAX=reference.FP8_E4M3_MAX,
                                 HAS_RES=residual is not None, BLOCK=block, num_warps=_warps(block))
    return QuantizedInput(xq, s), r_out


def silu_mul_quant(gate_up: torch.Tensor) -> QuantizedInput:
    """silu(gate) * up straight to per-token fp8."""
    if not _use_triton(gate_up):
        return silu_mul_quant_torch(gate_up)
    m, two_i = gate_up.shape
    i = two_i // 2
    xq = torch.empty((m, i), dtype=reference.FP8_DTYPE, device=gate_up.device)
    s = torch.empty((m, 1), dtype=torch.float32, device=gate_up.device)
    block = _next_pow2(i)
    _silu_mul_quant_kernel[(m,)](gate_up, xq, s, i, MIN_AMAX=reference.FP8_MIN_AMAX,
                                 FP8_MAX=reference.FP8_E4M3_MAX, BLOCK=block, num_warps=_warps(block))
    return QuantizedInput(xq, s)


def sparse_gemm_prequantized(q: QuantizedInput, packed, out_dtype=torch.bfloat16) -> torch.Tensor:
    """Our sparse GEMM on an already-quantized activation: the GEMM our op's dispatcher picks for (M, N, K)
    (`ops.gemm_prequantized`, the same GEMM `ops.sparse_fp8_linear` runs after its own quantization); the fp32
    reference on CPU."""
    if packed.backend == "reference":
        acc = q.xq.float() @ packed.dense_reference.t()
        return (acc * packed.scale.reshape(1, -1) * q.s_x).to(out_dtype)
    from ...kernels import ops

    return ops.gemm_prequantized(q.xq, q.s_x, packed.gpu_state, None, out_dtype)
