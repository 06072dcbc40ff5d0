"""Exact CPU reference of the sparse-FP8 linear that the GPU kernels must match.

The math, defined once here (every other path is tested against it):

1. Per-token dynamic activation quantization, row m of X (any float dtype, computed in fp32):
       amax[m] = max_k |X[m, k]|
       s_x[m]  = max(amax[m], FP8_MIN_AMAX) / FP8_E4M3_MAX
       Xq[m,k] = e4m3_rne(clamp(X[m,k] / s_x[m], -448, 448))     (IEEE fp32 division, saturating cast)
   * An all-zero row gets s_x = FP8_MIN_AMAX / 448 (vLLM's minimum scaling factor), Xq = 0, so Y = bias.
   * A row holding any NaN or +-inf gets s_x = NaN: its whole output row is NaN (never a silently wrong
     finite number).
2. FP8 x FP8 products accumulated in fp32: acc[m,n] = sum_k Xq[m,k] * W[n,k]. Each product of two e4m3
   numbers is exact in fp32; only the summation order rounds, which is why GPU comparisons use a tolerance.
3. Epilogue in fp32, then one rounding to the output dtype (bf16 or fp16, round-to-nearest-even):
       Y[m,n] = (acc[m,n] * s_w[n]) * s_x[m] + bias[n]
"""
from __future__ import annotations

import torch

FP8_DTYPE = torch.float8_e4m3fn
# Largest finite float8_e4m3fn value.
FP8_E4M3_MAX = 448.0
# vLLM's per-token quantizer floors the scale at 1 / (448 * 512); we floor amax so that the scale equals it.
FP8_MIN_AMAX = 1.0 / 512.0
OUTPUT_DTYPES = (torch.bfloat16, torch.float16)


def quantize_per_token_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token (per-row) FP8 e4m3 quantization.

    Args:
        x: [M, K] floating tensor.
    Returns:
        (xq [M, K] float8_e4m3fn, s_x [M, 1] float32) with x ~= xq * s_x.
    """
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"expected a 2-D floating tensor [M, K], got shape {tuple(x.shape)} dtype {x.dtype}")
    xf = x.float()
    finite_row = torch.isfinite(xf).all(dim=1, keepdim=True)
    amax = xf.abs().amax(dim=1, keepdim=True) if xf.shape[1] else xf.new_zeros(xf.shape[0], 1)
    scale = torch.clamp(amax, min=FP8_MIN_AMAX) / FP8_E4M3_MAX
    scale = torch.where(finite_row, scale, torch.full_like(scale, float("nan")))
    xq = torch.clamp(xf / scale, -FP8_E4M3_MAX, FP8_E4M3_MAX).to(FP8_DTYPE)
    return xq, scale


def scaled_fp8_mm_reference(
    xq: torch.Tensor,
    s_x: torch.Tensor,
    w_fp8: torch.Tensor,
    s_w: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """Y = (Xq @ W^T * s_w) * s_x + bias, fp32 accumulate, rounded once to out_dtype.

    Args:
        xq: [M, K] float8_e4m3fn activations;  s_x: [M, 1] or [M] float32 per-token scales.
        w_fp8: [N, K] float8_e4m3fn weights (2:4 zeros stored densely);  s_w: [N, 1] or [N] float32.
        bias: optional [N].  out_dtype: bfloat16 or float16.
    """
    acc = xq.float() @ w_fp8.float().t()
    y = acc * s_w.reshape(1, -1).float() * s_x.reshape(-1, 1).float()
    if bias is not None:
        y = y + bias.reshape(1, -1).float()
    return y.to(out_dtype)


def sparse_fp8_linear_reference(
    x: torch.Tensor,
    w_fp8: torch.Tensor,
    s_w: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """The whole op: per-token quantize x, then the scaled FP8 GEMM. x is [M, K]; returns [M, N]."""
    xq, s_x = quantize_per_token_fp8(x)
    return scaled_fp8_mm_reference(xq, s_x, w_fp8, s_w, bias, out_dtype)


def quantize_weight_per_channel_fp8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Static symmetric per-output-channel FP8 weight quantization (the checkpoint's weight scheme).

    Args:
        w: [N, K] floating weight.
    Returns:
        (w_fp8 [N, K] float8_e4m3fn, s_w [N, 1] float32). A zero row gets scale 1 so it stays exactly zero.
    """
    wf = w.float()
    amax = wf.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, amax / FP8_E4M3_MAX, torch.ones_like(amax))
    w_fp8 = torch.clamp(wf / scale, -FP8_E4M3_MAX, FP8_E4M3_MAX).to(FP8_DTYPE)
    return w_fp8, scale
