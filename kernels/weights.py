"""Weight preparation for the CUTLASS backend: GPU 2:4 compressor, metadata reorder, the per-weight state.

`prepare_weight(packed)` turns a reference-packed weight (sparse24.kernels.linear) on a CUDA device into the
form the GEMM reads; `compress_2of4` is bit-exact with layout.compress_2of4; `cutlass_compress` runs
CUTLASS's own compressor (verification of `reorder_meta` only).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import binding, layout
from .settings import settings
from .tuning import table as tuning

__all__ = ["GpuWeightState", "compress_2of4", "reorder_meta", "cutlass_compress", "prepare_weight"]


@dataclass
class GpuWeightState:
    """What the CUTLASS path needs besides the logical values: reordered metadata, optional dense copy."""

    a_values: torch.Tensor  # [N, K/2] fp8 values the GEMM reads (the logical values unless metadata came from CUTLASS)
    e_meta: torch.Tensor  # uint8, CUTLASS sm90 fp8 E layout
    s_w: torch.Tensor  # [N] f32 contiguous
    dense_t: torch.Tensor | None = None  # [K, N] column-major fp8 view of the dense weight (dense fallback)


def compress_2of4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GPU compressor: dense 2:4 fp8 W [N, K] -> (values [N, K/2], meta [N, K/8]) exactly as
    layout.compress_2of4. Raises layout.Not2of4Error for a group of 4 with more than 2 non-zeros."""
    if w.dim() != 2 or w.dtype != torch.float8_e4m3fn:
        raise ValueError(f"weight must be float8_e4m3fn [N, K], got {w.dtype} {tuple(w.shape)}")
    if not w.is_cuda:
        raise ValueError(f"GPU compressor needs a CUDA tensor, got device {w.device}")
    if not w.is_contiguous():
        raise ValueError("weight must be contiguous (row-major [N, K])")
    n, k = w.shape
    if k % 8:
        raise ValueError(f"K={k} is not a multiple of 8 (whole metadata bytes)")
    values = torch.empty((n, k // 2), dtype=torch.float8_e4m3fn, device=w.device)
    meta = torch.empty((n, k // 8), dtype=torch.uint8, device=w.device)
    bad = torch.zeros(1, dtype=torch.int32, device=w.device)
    if n == 0 or k == 0:
        return values, meta
    with binding.on_device(w.device):
        binding.check(binding.library().s24_compress_2of4(w.data_ptr(), n, k, values.data_ptr(), meta.data_ptr(),
                                                          bad.data_ptr(), binding.stream(w.device)), "compress")
    nbad = int(bad.item())
    if nbad:
        raise layout.Not2of4Error(f"{nbad} groups of 4 along K hold more than 2 non-zeros")
    return values, meta


def reorder_meta(meta: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Logical meta [N, K/8] -> CUTLASS sm90 E layout (flat uint8)."""
    if meta.shape != (n, k // 8) or meta.dtype != torch.uint8 or not meta.is_contiguous():
        raise ValueError(f"meta must be contiguous uint8 [{n}, {k // 8}], got {meta.dtype} {tuple(meta.shape)}")
    lib = binding.library()
    e = torch.empty(int(lib.s24_meta_reordered_bytes(n, k)), dtype=torch.uint8, device=meta.device)
    with binding.on_device(meta.device):
        binding.check(lib.s24_reorder_meta(meta.data_ptr(), n, k, e.data_ptr(), binding.stream(meta.device)),
                      "reorder_meta")
    return e


def cutlass_compress(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CUTLASS's StructuredSparseCompressor on dense W (verification of reorder_meta only)."""
    n, k = w.shape
    lib = binding.library()
    values = torch.zeros((n, k // 2), dtype=torch.uint8, device=w.device)
    e = torch.zeros(int(lib.s24_meta_reordered_bytes(n, k)), dtype=torch.uint8, device=w.device)
    with binding.on_device(w.device):
        binding.check(lib.s24_cutlass_compress(w.contiguous().data_ptr(), n, k, values.data_ptr(), e.data_ptr(),
                                               binding.stream(w.device)), "cutlass_compress")
    return values, e


def prepare_weight(packed):
    """Turn a reference-packed weight (values/meta on a CUDA device) into the CUTLASS backend's form."""
    values, meta = packed.values, packed.meta
    if not values.is_cuda:
        raise ValueError(f"prepare_weight needs CUDA tensors, got {values.device}")
    reason = binding.unavailable_reason(values.device)
    if reason:
        raise binding.BackendUnavailable(reason)
    n, k = packed.n, packed.k
    layout.check_k_alignment(k)
    if n % 8:
        raise ValueError(f"N={n} must be a multiple of 8 for the CUTLASS kernels (16-byte output rows)")
    values = values.contiguous()
    if settings().meta_source == "cutlass":
        # CUTLASS's own compressor on the dense weight (its padding rule for groups with < 2 non-zeros differs
        # from layout.py's, so it brings its own values)
        a_values, e = cutlass_compress(layout.decompress_2of4(values, meta))
        a_values = a_values.view(torch.float8_e4m3fn)
    else:
        a_values, e = values, reorder_meta(meta.contiguous(), n, k)
    s_w = packed.scale.reshape(-1).float().contiguous()
    dense_t = None
    if tuning.load_table(settings().tuning_table).needs_dense(n, k):
        dense_t = layout.decompress_2of4(values, meta).t()  # [K, N] column-major, what _scaled_mm wants
    packed.values = values
    packed.gpu_state = GpuWeightState(a_values, e, s_w, dense_t)
    packed.backend = "cutlass"
    packed.dense_reference = None
    return packed
