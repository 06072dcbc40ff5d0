"""The GPU sparse-FP8 linear's public verbs: torch custom ops and the dispatcher that picks a GEMM.

Ops (registered under the `sparse24::` namespace with fake implementations, so torch.compile and CUDA
graphs can trace them):

    quantize_per_token(x)                      -> (xq fp8 [M,K], s_x f32 [M,1])   (one fused kernel)
    sparse_gemm(xq, s_x, values, e, s_w, bias, out_dtype, config, mode, splits) -> [M,N]   (one explicit config)
    sparse_fp8_linear_op(x, values, e, s_w, bias, dense_t, out_dtype) -> [M,N]  (quant + dispatched GEMM)

Plain functions: `dispatch_choice(m, n, k, out_dtype, have_dense)` (what the tuning table picks),
`gemm_prequantized(xq, s_x, state, bias, out_dtype)` (the dispatched GEMM on already-quantized activations),
`sparse_fp8_linear(x2d, packed, bias, out_dtype)` (validated entry used by sparse24.kernels.linear).
The ctypes library lives in binding.py, weight preparation in weights.py; every op runs on its inputs'
device and that device's current stream.
"""
from __future__ import annotations

import torch

from . import binding
from .settings import settings
from .tuning import table as tuning
from .weights import GpuWeightState

__all__ = ["quantize_per_token", "sparse_gemm", "sparse_fp8_linear_op", "dispatch_choice", "gemm_prequantized",
           "sparse_fp8_linear"]


@torch.library.custom_op("sparse24::quantize_per_token", mutates_args=())
def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token FP8 quantization (reference.quantize_per_token_fp8) in one kernel."""
    return binding.quantize(x)


@quantize_per_token.register_fake
def _(x):
    return (x.new_empty(x.shape, dtype=torch.float8_e4m3fn), x.new_empty((x.shape[0], 1), dtype=torch.float32))


@torch.library.custom_op("sparse24::sparse_gemm", mutates_args=())
def sparse_gemm(xq: torch.Tensor, s_x: torch.Tensor, values: torch.Tensor, e_meta: torch.Tensor,
                s_w: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype, config: int, mode: int,
                splits: int) -> torch.Tensor:
    """Y = s_x * s_w * (xq . W^T) + bias with one explicit GEMM config (benchmarks / tuning)."""
    return binding.sparse_gemm(xq, s_x, values, e_meta, s_w, bias, out_dtype, config, mode, splits)


@sparse_gemm.register_fake
def _(xq, s_x, values, e_meta, s_w, bias, out_dtype, config, mode, splits):
    return xq.new_empty((xq.shape[0], values.shape[0]), dtype=out_dtype)


def dispatch_choice(m: int, n: int, k: int, out_dtype: torch.dtype, have_dense: bool) -> tuning.Choice:
    """The GEMM the tuning table picks for (M, N, K), corrected for what this build and weight can run."""
    c = tuning.load_table(settings().tuning_table).lookup(m, n, k)
    if c.backend == "dense" and not (have_dense and out_dtype == torch.bfloat16):
        c = tuning.default_choice(m)
    if c.backend == "sparse" and binding.config_id(c.config) is None:
        c = tuning.default_choice(m)
        if binding.config_id(c.config) is None:  # a partial build: the compiled config whose token tile fits M best
            fit = sorted(binding.compiled_configs(),
                         key=lambda i: (i["tile_n"] < min(m, 128), abs(i["tile_n"] - m)))
            c = tuning.Choice(config=fit[0]["name"])
    return c


def _dispatched_gemm(xq, s_x, values, e_meta, s_w, bias, dense_t, out_dtype, pdl: bool) -> torch.Tensor:
    m, k = xq.shape
    n = values.shape[0]
    c = dispatch_choice(m, n, k, out_dtype, dense_t is not None)
    if c.backend == "dense":
        return binding.dense_gemm(xq, s_x, dense_t, s_w, bias, out_dtype)
    return binding.sparse_gemm(xq, s_x, values, e_meta, s_w, bias, out_dtype, binding.config_id(c.config),
                               tuning.MODES[c.mode], c.splits, pdl=pdl)


def gemm_prequantized(xq: torch.Tensor, s_x: torch.Tensor, state: GpuWeightState, bias: torch.Tensor | None,
                      out_dtype: torch.dtype) -> torch.Tensor:
    """The dispatched GEMM on activations some other kernel already quantized (xq fp8 [M, K], s_x f32 [M, 1])."""
    if xq.shape[0] == 0:
        return xq.new_empty((0, state.a_values.shape[0]), dtype=out_dtype)
    return _dispatched_gemm(xq, s_x, state.a_values, state.e_meta, state.s_w, bias, state.dense_t, out_dtype,
                            pdl=False)


def _linear_impl(x, values, e_meta, s_w, bias, dense_t, out_dtype) -> torch.Tensor:
    xq, s_x = binding.quantize(x)
    if x.shape[0] == 0:
        return x.new_empty((0, values.shape[0]), dtype=out_dtype)
    # PDL: the GEMM's prologue overlaps the tail of the quantization kernel it follows
    return _dispatched_gemm(xq, s_x, values, e_meta, s_w, bias, dense_t, out_dtype, pdl=True)


@torch.library.custom_op("sparse24::sparse_fp8_linear", mutates_args=())
def sparse_fp8_linear_op(x: torch.Tensor, values: torch.Tensor, e_meta: torch.Tensor, s_w: torch.Tensor,
                         bias: torch.Tensor | None, dense_t: torch.Tensor | None,
                         out_dtype: torch.dtype) -> torch.Tensor:
    """Fused per-token quantization + the GEMM the tuning table picks for (M, N, K)."""
    return _linear_impl(x, values, e_meta, s_w, bias, dense_t, out_dtype)


@sparse_fp8_linear_op.register_fake
def _(x, values, e_meta, s_w, bias, dense_t, out_dtype):
    return x.new_empty((x.shape[0], values.shape[0]), dtype=out_dtype)


def sparse_fp8_linear(x2d: torch.Tensor, packed, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """Validated entry point used by sparse24.kernels.linear for backend 'cutlass'. x2d is [M, K]."""
    st: GpuWeightState = packed.gpu_state
    if x2d.dim() != 2:
        raise ValueError(f"expected x of shape [M, K], got {tuple(x2d.shape)}")
    if x2d.dtype not in binding.DTYPE_CODE:
        raise TypeError(f"x must be bfloat16, float16 or float32, got {x2d.dtype}")
    if out_dtype not in binding.OUT_DTYPES:
        raise TypeError(f"out_dtype must be bfloat16 or float16 on the GPU path, got {out_dtype}")
    if x2d.device != packed.values.device:
        raise ValueError(f"device mismatch: x on {x2d.device}, weight on {packed.values.device}")
    if x2d.shape[1] != packed.k:
        raise ValueError(f"input has K={x2d.shape[1]} but the weight expects K={packed.k}")
    if x2d.shape[0] and x2d.stride(1) != 1:
        raise ValueError(f"x must have unit stride along K (got strides {x2d.stride()}); call .contiguous()")
    if bias is not None:
        if bias.numel() != packed.n:
            raise ValueError(f"bias must have N={packed.n} elements, got shape {tuple(bias.shape)}")
        if bias.device != x2d.device:
            raise ValueError(f"device mismatch: bias on {bias.device}, x on {x2d.device}")
        bias = bias.reshape(-1).to(out_dtype).contiguous()
    if torch.compiler.is_compiling():
        return sparse_fp8_linear_op(x2d, st.a_values, st.e_meta, st.s_w, bias, st.dense_t, out_dtype)
    # eager: skip the custom-op dispatcher (tens of us of host time per call); same function
    return _linear_impl(x2d, st.a_values, st.e_meta, st.s_w, bias, st.dense_t, out_dtype)
