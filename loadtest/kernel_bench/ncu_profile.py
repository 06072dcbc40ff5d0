"""Nsight Compute profile of our 2:4 sparse FP8 linear vs cuBLASLt fp8 on gate_up (28672x4096), M=16 and 4096.

Run on the device under ncu (see kernels/README.md):
    ncu --profile-from-start off --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section ComputeWorkloadAnalysis --csv --page details python3 -m sparse24.loadtest.kernel_bench.ncu_profile
Only the calls between cudaProfilerStart/Stop are profiled (after warm-up).
"""
from __future__ import annotations

import torch

from ...kernels import ops, reference
from ...kernels.linear import pack_sparse_fp8_weight, sparse_fp8_linear

N, K = 28672, 4096
MS = (16, 4096)


def _magnitude_2of4(w: torch.Tensor) -> torch.Tensor:
    # Same rule as checkpoint.prune (which imports compressed-tensors, absent on the device).
    g = w.abs().view(w.shape[0], -1, 4)
    keep = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, g.topk(2, dim=-1).indices, True)
    return keep.view_as(w)


def main() -> None:
    torch.manual_seed(0)
    w = torch.randn(N, K, device="cuda")
    w_fp8, s_w = reference.quantize_weight_per_channel_fp8(w * _magnitude_2of4(w))
    packed = pack_sparse_fp8_weight(w_fp8, s_w)
    print("backend", packed.backend)
    for m in MS:
        x = torch.randn(m, K, device="cuda", dtype=torch.bfloat16)
        xq, s_x = ops.quantize_per_token(x)

        def dense():
            return torch._scaled_mm(xq, w_fp8.t(), scale_a=s_x, scale_b=s_w.reshape(1, -1),
                                    out_dtype=torch.bfloat16, use_fast_accum=True)

        for _ in range(5):
            sparse_fp8_linear(x, packed), dense()
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        torch.cuda.nvtx.range_push(f"sparse_m{m}")
        sparse_fp8_linear(x, packed)
        torch.cuda.nvtx.range_pop()
        torch.cuda.nvtx.range_push(f"cublaslt_fp8_m{m}")
        dense()
        torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
        print("profiled M =", m)


if __name__ == "__main__":
    main()
