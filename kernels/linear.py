"""The sparse-FP8 linear: one entry point used by the vLLM plugin, the model benchmark and the tests.

    packed = pack_sparse_fp8_weight(w_fp8, w_scale)      # once, at load time
    y = sparse_fp8_linear(x, packed, bias)                # every forward

On CPU (or without the built GPU library) this runs the exact reference math of `reference.py`.
The GPU backend (CUTLASS sm_90a: weights.py prepares, ops.py runs; backend.py decides) plugs in behind the
same two functions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from . import backend as backend_choice
from . import layout, reference
from .checkpoint.format import per_channel_scale

logger = logging.getLogger(__name__)


@dataclass
class PackedSparseFp8Weight:
    """A 2:4 sparse FP8 weight ready for the GEMM.

    values [N, K/2] fp8 and meta [N, K/8] uint8 are the logical layout of `layout.py`; scale is [N, 1] fp32.
    `dense_reference` caches the decompressed fp8 values as fp32 for the CPU path (fp8 values are exact in
    fp32, so the result equals the reference bit for bit while using the fast fp32 GEMM).
    """

    values: torch.Tensor
    meta: torch.Tensor
    scale: torch.Tensor
    n: int
    k: int
    backend: str = "reference"
    dense_reference: torch.Tensor | None = None
    gpu_state: object | None = None  # backend-specific (e.g. CUTLASS-reordered metadata)


def pack_sparse_fp8_weight(w_fp8: torch.Tensor, scale: torch.Tensor, backend: str = "auto") -> PackedSparseFp8Weight:
    """Check and compress a 2:4 FP8 weight [N, K] with per-channel scales ([N], [N, 1] or a scalar)."""
    if w_fp8.dim() != 2 or w_fp8.dtype != torch.float8_e4m3fn:
        raise ValueError(f"weight must be float8_e4m3fn [N, K], got {w_fp8.dtype} {tuple(w_fp8.shape)}")
    n, k = w_fp8.shape
    layout.check_k_alignment(k)
    scale = per_channel_scale(scale, n, None, "weight scale")
    if backend_choice.use_cutlass(backend, w_fp8.device):
        from . import weights  # the CUTLASS path's weight preparation

        # GPU compressor (bit-exact with layout.compress_2of4) when the CUTLASS backend will run the weight.
        values, meta = weights.compress_2of4(w_fp8.contiguous())
        return weights.prepare_weight(PackedSparseFp8Weight(values, meta, scale, n, k))
    values, meta = layout.compress_2of4(w_fp8)
    packed = PackedSparseFp8Weight(values, meta, scale, n, k)
    packed.dense_reference = w_fp8.float()
    return packed


def sparse_fp8_linear(
    x: torch.Tensor,
    packed: PackedSparseFp8Weight,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """y[..., N] = per-token-fp8(x)[..., K] @ W^T * s_w * s_x + bias.

    out_dtype defaults to x.dtype; float32 (CPU development) skips the final bf16 rounding.
    """
    if x.shape[-1] != packed.k:
        raise ValueError(f"input has K={x.shape[-1]} but the weight expects K={packed.k}")
    out_dtype = out_dtype or x.dtype
    lead = x.shape[:-1]
    x2 = x.reshape(-1, packed.k)
    if packed.backend != "reference":
        from . import ops  # the CUTLASS path (imports no CUDA code until called)

        y = ops.sparse_fp8_linear(x2, packed, bias, out_dtype)
    else:
        xq, s_x = reference.quantize_per_token_fp8(x2)
        acc = xq.float() @ packed.dense_reference.t()
        y = acc * packed.scale.reshape(1, -1) * s_x
        if bias is not None:
            y = y + bias.float()
        y = y.to(out_dtype)
    return y.reshape(*lead, packed.n)
