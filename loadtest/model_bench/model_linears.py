"""The only thing that differs between the three benchmark variants: the linear layers.

    bf16        Bf16Linear       y = x @ W^T                         (cuBLAS via F.linear)
    fp8         Fp8DenseLinear   per-token dynamic x per-channel static FP8, `torch._scaled_mm` row-wise
                                 scales with use_fast_accum (cuBLASLt), activation quantization in one fused
                                 kernel so the baseline is not charged for eager quantization (FACTS.md:
                                 70-230 us eager): by default the very kernel our sparse op uses
                                 (ops.quantize_per_token), so fp8 and sparse_fp8 differ only in the GEMM;
                                 `set_fp8_quantizer("triton")` uses model_kernels' Triton one instead
    sparse_fp8  SparseFp8Linear  our op: `pack_sparse_fp8_weight` once, `sparse_fp8_linear` per forward
                                 (CUTLASS sm_90a backend when built, else the CPU reference math)

`make_linear(w, variant)` turns one bf16 weight [N, K] into the variant's module: fp8 quantizes it per
channel; sparse_fp8 first keeps the 2 largest-magnitude weights of every 4 along K, then quantizes.
On CPU, fp8 computes `reference.scaled_fp8_mm_reference` (same math as the sparse op's reference path).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.profiler import record_function

from ...kernels import reference
from ...kernels.linear import pack_sparse_fp8_weight, sparse_fp8_linear
from . import model_kernels

VARIANTS = ("bf16", "fp8", "sparse_fp8")
FP8_QUANTIZERS = ("auto", "s24", "triton")
_fp8_quantizer = "auto"


def set_fp8_quantizer(name: str) -> None:
    """Activation quantizer of the fp8 dense baseline on CUDA: 'auto' (s24 when built, else triton)."""
    global _fp8_quantizer
    if name not in FP8_QUANTIZERS:
        raise ValueError(f"unknown fp8 quantizer {name!r}; expected one of {FP8_QUANTIZERS}")
    _fp8_quantizer = name


def fp8_quantizer_for(x: torch.Tensor) -> str:
    """Which quantizer Fp8DenseLinear uses for x: 's24' (ops.quantize_per_token), 'triton' or 'reference'."""
    if not x.is_cuda:
        return "triton" if model_kernels._use_triton(x) else "reference"
    if _fp8_quantizer in ("auto", "s24"):
        from ...kernels import binding

        if binding.unavailable_reason(x.device) is None:
            return "s24"
        if _fp8_quantizer == "s24":
            raise RuntimeError(f"fp8 quantizer 's24' unavailable: {binding.unavailable_reason(x.device)}")
    return "triton"


def quantize_activations_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token fp8 quantization of x [M, K] with the baseline's quantizer (see fp8_quantizer_for)."""
    if fp8_quantizer_for(x) == "s24":
        from ...kernels import ops

        return ops.quantize_per_token(x)
    return model_kernels.quantize_per_token_fp8(x)


def prune_2of4_magnitude(w: torch.Tensor) -> torch.Tensor:
    """Zero the 2 smallest-|w| of every group of 4 consecutive elements along K (ties: whichever topk picks)."""
    n, k = w.shape
    if k % 4:
        raise ValueError(f"K={k} is not a multiple of 4: cannot prune 2:4")
    groups = w.reshape(n, k // 4, 4)
    keep = groups.abs().float().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape(n, k)


class Bf16Linear(nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.out_features, self.in_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


class Fp8DenseLinear(nn.Module):
    """Dense FP8 weight [N, K] stored so that `w_t = weight.t()` is the column-major B of `_scaled_mm`."""

    def __init__(self, weight_bf16: torch.Tensor):
        super().__init__()
        w_fp8, s_w = reference.quantize_weight_per_channel_fp8(weight_bf16)
        self.w_fp8 = w_fp8.contiguous()  # [N, K] row-major == [K, N] column-major
        self.s_w = s_w.reshape(1, -1).contiguous()  # [1, N] fp32
        self.out_features, self.in_features = w_fp8.shape

    def forward(self, x) -> torch.Tensor:
        """x: bf16 [..., K], or a QuantizedInput (the `*_fq` variants quantize in the preceding op)."""
        if isinstance(x, tuple):  # model_fused_quant.QuantizedInput
            xq, s_x = x
            x2, lead, x_dtype = xq, xq.shape[:-1], torch.bfloat16
        else:
            lead, x_dtype = x.shape[:-1], x.dtype
            x2 = x.reshape(-1, self.in_features)
            with record_function("fp8.quant"):
                xq, s_x = quantize_activations_fp8(x2)
        with record_function("fp8.gemm"):
            if x2.is_cuda:
                y = torch._scaled_mm(xq, self.w_fp8.t(), scale_a=s_x, scale_b=self.s_w,
                                     out_dtype=x_dtype, use_fast_accum=True)
            else:
                y = reference.scaled_fp8_mm_reference(xq, s_x, self.w_fp8, self.s_w, None, x_dtype)
        return y.reshape(*lead, self.out_features)


class SparseFp8Linear(nn.Module):
    """2:4 sparse FP8 weight behind our op; `backend` says which path `sparse_fp8_linear` takes."""

    def __init__(self, weight_bf16: torch.Tensor):
        super().__init__()
        w_fp8, s_w = reference.quantize_weight_per_channel_fp8(prune_2of4_magnitude(weight_bf16))
        self.packed = pack_sparse_fp8_weight(w_fp8, s_w)
        self.out_features, self.in_features = w_fp8.shape

    @property
    def backend(self) -> str:
        return self.packed.backend

    def forward(self, x) -> torch.Tensor:
        """x: bf16 [..., K], or a QuantizedInput (then only our GEMM runs: `*_fq` variants)."""
        if isinstance(x, tuple):
            from .model_fused_quant import sparse_gemm_prequantized

            with record_function("sparse_fp8.gemm"):
                return sparse_gemm_prequantized(x, self.packed)
        with record_function("sparse_fp8.op"):
            return sparse_fp8_linear(x, self.packed)


_CLASSES = {"bf16": Bf16Linear, "fp8": Fp8DenseLinear, "sparse_fp8": SparseFp8Linear}


def make_linear(weight_bf16: torch.Tensor, variant: str) -> nn.Module:
    """The variant's linear module for a bf16 (or fp32, on CPU) weight [N, K] (bias-free, like Llama)."""
    if variant not in _CLASSES:
        raise ValueError(f"unknown linear variant {variant!r}; expected one of {VARIANTS}")
    return _CLASSES[variant](weight_bf16)
