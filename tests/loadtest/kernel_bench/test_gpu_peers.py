"""GPU tests of the benchmark's peers against the reference: cuSPARSELt cached plan, vLLM's CUTLASS FP8 ops.

Each skips with the reason where it cannot run (no GPU, peer library not built, no vLLM ops). Run on the device
with `bash loadtest/kernel_bench/device_run.sh tests` (or pytest on this file after the `peers` setup of that script).
"""
from __future__ import annotations

import pytest
import torch

from sparse24.kernels import reference
from sparse24.loadtest.kernel_bench import peers
from sparse24.loadtest.kernel_bench.shapes import random_24_fp8
from sparse24.kernels.peers import cusparselt

REL_TOL = 1e-2  # same as test_gpu_sparse_fp8 (one bf16 rounding; cuSPARSELt's per-token scale rounds twice)


def _operands(n, k, m, seed=0):
    w, s_w = random_24_fp8(n, k, seed=seed)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=torch.Generator("cuda").manual_seed(seed))
    xq, s_x = reference.quantize_per_token_fp8(x)
    ref = reference.scaled_fp8_mm_reference(xq, s_x, w, s_w, None, torch.bfloat16).double()
    return w, s_w, x, xq, s_x, ref


def _rel(y, ref):
    return ((y.double() - ref).norm() / ref.norm()).item()


_cslt_reason = cusparselt.unavailable_reason() if torch.cuda.is_available() else "no CUDA device"


@pytest.mark.skipif(_cslt_reason is not None, reason=f"cuSPARSELt peer unavailable: {_cslt_reason}")
@pytest.mark.parametrize("m", [1, 16, 128, 1000])
def test_cusparselt_cached_plan_matches_reference(m):
    n, k = 1024, 2048
    w, s_w, _, xq, s_x, ref = _operands(n, k, m)
    weight = cusparselt.CusparseLtFp8Weight(w, s_w)
    assert not weight.pruned  # random_24_fp8 is 2:4 along K in cuSPARSELt's sense too
    plan = weight.plan(xq)
    out = plan.new_out()
    y = plan.matmul(xq, out, s_x)
    y = y if plan.d_col_major else y.t()
    assert _rel(y, ref) < REL_TOL, plan.info()
    # without s_x: only the per-channel alpha vector
    y0 = plan.matmul(xq, out, None)
    y0 = (y0 if plan.d_col_major else y0.t()).double() * s_x.double()
    assert _rel(y0, ref) < REL_TOL
    # a second call with the cached plan (no search) gives the same output
    y2 = plan.matmul(xq, plan.new_out(), s_x)
    torch.testing.assert_close(y2 if plan.d_col_major else y2.t(), y, rtol=0, atol=0)


@pytest.mark.skipif(_cslt_reason is not None, reason=f"cuSPARSELt peer unavailable: {_cslt_reason}")
def test_cusparselt_matmul_replays_in_a_cuda_graph():
    w, s_w, _, xq, s_x, ref = _operands(512, 1024, 16, seed=1)
    plan = cusparselt.CusparseLtFp8Weight(w, s_w).plan(xq)
    out = plan.new_out()
    plan.matmul(xq, out, s_x)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        plan.matmul(xq, out, s_x)
    out.zero_()
    g.replay()
    torch.cuda.synchronize()
    assert _rel(out if plan.d_col_major else out.t(), ref) < REL_TOL


_vllm, _vllm_reason = peers.load_vllm_ops() if torch.cuda.is_available() else (None, "no CUDA device")


@pytest.mark.skipif(_vllm is None, reason=f"vLLM FP8 ops unavailable: {_vllm_reason}")
@pytest.mark.parametrize("m", [1, 64, 1000])
def test_vllm_cutlass_scaled_mm_and_quantizer_match_reference(m):
    n, k = 1024, 2048
    w, s_w, x, xq, s_x, ref = _operands(n, k, m, seed=2)
    y = _vllm.scaled_mm(xq, w.t(), s_x, s_w.reshape(-1, 1).contiguous(), torch.bfloat16)
    assert y.shape == (m, n) and _rel(y, ref) < REL_TOL
    q, s = _vllm.quant_per_token(x)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (m, 1)
    torch.testing.assert_close(s, s_x, rtol=1e-5, atol=0)  # same amax/448 rule as ours
