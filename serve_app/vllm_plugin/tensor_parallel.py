"""Shard math for 2:4 layers under vLLM's tensor parallelism (pure torch, no vLLM import).

vLLM narrows checkpoint tensors per rank: column-parallel layers along N (rows), row-parallel layers along
K (columns). 2:4 groups run along K, so an N-split never touches a group; a K-split keeps every group and
every metadata byte whole when each rank's K is a multiple of `layout.K_ALIGNMENT` (64): then the K/2
compressed values, the K/8 bitmask bytes and our [N, K/8] metadata of a rank are exactly that rank's
columns. `check_partition_alignment` enforces this where the layer is built, naming the layer.
"""
from __future__ import annotations

import torch

from ...kernels import layout


def check_partition_alignment(
    layer_name: str, input_size: int, input_size_per_partition: int, output_partition_sizes: list[int]
) -> None:
    """Raise ValueError naming the layer if this rank's K slice would split 2:4 groups or metadata bytes."""
    if input_size_per_partition % layout.K_ALIGNMENT:
        tp = input_size // max(input_size_per_partition, 1)
        where = f" (K={input_size} split over {tp} tensor-parallel ranks)" if tp > 1 else f" (K={input_size})"
        raise ValueError(
            f"{layer_name}: K per rank = {input_size_per_partition}{where} is not a multiple of "
            f"{layout.K_ALIGNMENT}; 2:4 groups and metadata bytes would be split. Use a tensor-parallel size that "
            f"keeps K/tp a multiple of {layout.K_ALIGNMENT}."
        )
    bad = [n for n in output_partition_sizes if n <= 0]
    if bad:
        raise ValueError(f"{layer_name}: output partition sizes {output_partition_sizes} must all be positive")


def per_tensor_to_per_channel(scales: torch.Tensor, logical_widths: list[int]) -> torch.Tensor:
    """One FP8 scale per fused shard ([S] or [S, 1]) -> one per output channel [sum(widths), 1] float32.

    A fused layer (qkv_proj, gate_up_proj) of a per-tensor checkpoint holds one scale per original layer;
    repeating each over its rows gives exactly the per-channel form the sparse kernel takes.
    """
    flat = scales.detach().float().reshape(-1)
    if flat.numel() != len(logical_widths):
        raise ValueError(f"{flat.numel()} per-tensor scales for {len(logical_widths)} fused shards {logical_widths}")
    return torch.repeat_interleave(flat, torch.tensor(logical_widths, device=flat.device)).reshape(-1, 1)


def shard_of_row(row: int, logical_widths: list[int]) -> int:
    """Index of the fused shard that output row `row` belongs to."""
    end = 0
    for i, w in enumerate(logical_widths):
        end += w
        if row < end:
            return i
    raise IndexError(f"row {row} outside fused widths {logical_widths}")


def narrow_k(t: torch.Tensor, rank: int, tp_size: int) -> torch.Tensor:
    """This rank's slice along the last dim (what vLLM's row-parallel loader does to any [N, X] tensor)."""
    size = t.shape[-1] // tp_size
    return t.narrow(-1, rank * size, size)
