"""The 2:4 packed layout: the single place it is defined.

A 2:4 sparse weight W [N, K] (at most 2 non-zeros in every group of 4 consecutive elements along K) is
stored as
    values [N, K/2]  same dtype as W (fp8 e4m3 in this product): the 2 kept elements of each group,
                     in ascending position order;
    meta   [N, K/8]  uint8: per group a 4-bit nibble `idx0 | idx1 << 2` (idx0 < idx1, positions 0..3 inside
                     the group); group 2j goes in the low nibble of byte j, group 2j+1 in the high nibble.
This is the "logical" metadata of NVIDIA's sparse tensor cores (two 2-bit indices per group). A group
with fewer than 2 non-zeros keeps its non-zeros plus the lowest unused positions, so every group has
exactly two distinct, ascending indices: the encoding of a given W is unique, which makes CPU and GPU
compressors comparable bit for bit. Any GPU-specific reordering of `meta` (e.g. CUTLASS's sm90 metadata
atom layout) is done by the GPU compressor from this layout, never stored on disk.
"""
from __future__ import annotations

import torch

GROUP = 4
# K must be a multiple of this: whole metadata bytes (8 elements) and 16-byte aligned fp8 value rows
# (K/2 values) for TMA, which needs K % 32 == 0; 64 matches one sparse fp8 wgmma K-step.
K_ALIGNMENT = 64


class Not2of4Error(ValueError):
    """A weight has a group of 4 along K with more than 2 non-zeros."""


def _nonzero_mask(w: torch.Tensor) -> torch.Tensor:
    if w.dtype == torch.float8_e4m3fn:
        # fp8 has few kernels on CPU; test the bit pattern (+0 = 0x00, -0 = 0x80 both count as zero).
        return (w.view(torch.uint8) & 0x7F) != 0
    return w != 0


def k_alignment_problem(k: int) -> str | None:
    """Why K cannot run on the 2:4 sparse kernels, or None (checkpoint.format reports it as a CheckpointError)."""
    if k % K_ALIGNMENT:
        return f"K={k} is not a multiple of {K_ALIGNMENT} required by the 2:4 sparse kernels"
    return None


def check_k_alignment(k: int, what: str = "weight") -> None:
    problem = k_alignment_problem(k)
    if problem:
        raise ValueError(f"{what}: {problem}")


def violating_groups(w: torch.Tensor) -> torch.Tensor:
    """Bool [N, K/4]: True where a group of 4 along K holds more than 2 non-zeros."""
    n, k = w.shape
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of {GROUP}")
    return _nonzero_mask(w).view(n, k // GROUP, GROUP).sum(-1) > 2


def kept_mask_2of4(w: torch.Tensor) -> torch.Tensor:
    """Bool [N, K]: exactly 2 True per group: the non-zeros, padded with the lowest unused positions."""
    n, k = w.shape
    nz = _nonzero_mask(w).view(n, k // GROUP, GROUP)
    count = nz.sum(-1, keepdim=True)
    if bool((count > 2).any()):
        raise Not2of4Error(f"{int((count > 2).sum())} groups of 4 along K hold more than 2 non-zeros")
    zero_rank = torch.cumsum(~nz, dim=-1) - 1  # 0-based rank of each zero among its group's zeros
    kept = nz | (~nz & (zero_rank < (2 - count)))
    return kept.view(n, k)


def compress_2of4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W [N, K] (2:4) -> (values [N, K/2], meta [N, K/8] uint8) in the layout above."""
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight [N, K], got shape {tuple(w.shape)}")
    n, k = w.shape
    if k % 8:
        raise ValueError(f"K={k} is not a multiple of 8 (whole metadata bytes)")
    kept = kept_mask_2of4(w).view(n, k // GROUP, GROUP)
    pos = torch.arange(GROUP, device=w.device).expand_as(kept)
    # Kept positions sort first (keys 0..3), the others after (4..7); take the first two.
    idx = torch.where(kept, pos, pos + GROUP).sort(dim=-1).values[..., :2]
    raw = w.view(torch.uint8) if w.dtype == torch.float8_e4m3fn else w
    values = torch.gather(raw.view(n, k // GROUP, GROUP), -1, idx).reshape(n, k // 2)
    if w.dtype == torch.float8_e4m3fn:
        values = values.view(torch.float8_e4m3fn)
    nibble = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8).view(n, k // 8, 2)
    meta = nibble[..., 0] | (nibble[..., 1] << 4)
    return values.contiguous(), meta.contiguous()


def decompress_2of4(values: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """(values [N, K/2], meta [N, K/8]) -> dense W [N, K] with zeros at the dropped positions."""
    n, half_k = values.shape
    k = half_k * 2
    if meta.shape != (n, k // 8) or meta.dtype != torch.uint8:
        raise ValueError(f"meta must be uint8 [{n}, {k // 8}], got {meta.dtype} {tuple(meta.shape)}")
    nibbles = torch.stack([meta & 0xF, meta >> 4], dim=-1).view(n, k // GROUP)
    idx = torch.stack([nibbles & 0x3, (nibbles >> 2) & 0x3], dim=-1).long()
    if bool((idx[..., 0] >= idx[..., 1]).any()):
        raise ValueError("meta holds a group whose indices are not strictly ascending")
    is_fp8 = values.dtype == torch.float8_e4m3fn
    raw = values.view(torch.uint8) if is_fp8 else values
    dense = torch.zeros(n, k // GROUP, GROUP, dtype=raw.dtype, device=values.device)
    dense.scatter_(-1, idx, raw.view(n, k // GROUP, 2))
    dense = dense.view(n, k)
    return dense.view(torch.float8_e4m3fn) if is_fp8 else dense
