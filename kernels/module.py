"""`SparseFp8Linear`: an nn.Module over the sparse-FP8 linear op, for plain PyTorch models."""
from __future__ import annotations

import torch
from torch import nn

from .linear import PackedSparseFp8Weight, pack_sparse_fp8_weight, sparse_fp8_linear


class SparseFp8Linear(nn.Module):
    """y = sparse_fp8_linear(x, W, bias): W is 2:4 FP8 with per-channel scales, x is quantized per token."""

    def __init__(self, packed: PackedSparseFp8Weight, bias: torch.Tensor | None = None):
        super().__init__()
        self.packed = packed
        self.in_features, self.out_features = packed.k, packed.n
        self.register_buffer("bias", bias, persistent=False)

    @classmethod
    def from_fp8(cls, w_fp8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> "SparseFp8Linear":
        return cls(pack_sparse_fp8_weight(w_fp8, scale), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sparse_fp8_linear(x, self.packed, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, 2:4 fp8, backend={self.packed.backend}"
