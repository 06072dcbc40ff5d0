"""Synthetic capacity profiles for the simulator report (clearly labelled as not measured).

``h100_like_profile``: Llama-3.1-8B 2:4-sparse FP8 on one H100, shaped after the seed blog
(RedHat "2:4 Sparse Llama FP8", Figs 2/4: ITL rises slowly with QPS, then bends up near
saturation). The blog's figures are images, so the numbers are a queueing-style model, not
readings: ITL_p50(rho) = base / sqrt(1 - rho), rho = qps / qps_max; p90/p99 widen with load
(prefill interference); TTFT_p50 = ttft0 / (1 - rho). Replace with a measured profile from
``sparse24-loadtest`` when one exists for the GPU.
"""

from __future__ import annotations

import numpy as np

from .profile import CapacityPoint, CapacityProfile, WorkloadCapacity

# (name, prompt, output, single-stream ITL ms, saturation QPS per replica, TTFT at light load ms)
# Single-stream ITL ~5 ms: 8B FP8 weights (~8 GB) streamed at ~2.5 TB/s effective on H100,
# minus sparsity's ~30% (seed: "30% lower latency from sparsity alone").
_H100_SPARSE_FP8 = [
    ("multi_turn_chat", 512, 256, 5.0, 16.0, 25.0),
    ("code_completion", 256, 1024, 5.0, 4.5, 20.0),
    ("instruction_following", 256, 128, 5.0, 30.0, 20.0),
]


def _points(base_ms: float, qps_max: float, ttft0_ms: float) -> list:
    pts = []
    for rho in (0.03, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
        p50 = base_ms / np.sqrt(1.0 - rho)
        pts.append(CapacityPoint(
            qps=round(rho * qps_max, 4), itl_p50_ms=round(p50, 3), itl_p90_ms=round(p50 * (1.1 + 0.6 * rho), 3),
            itl_p99_ms=round(p50 * (1.4 + 1.6 * rho), 3), ttft_p50_ms=round(ttft0_ms / (1.0 - rho), 2),
            ttft_p90_ms=round(1.6 * ttft0_ms / (1.0 - rho), 2)))
    return pts


def h100_like_profile() -> CapacityProfile:
    return CapacityProfile(
        deployment="sparse-fp8-llama-3.1-8b (synthetic H100-like)", model="RedHatAI/Sparse-Llama-3.1-8B-2of4-FP8-dynamic",
        machine="1x H100 80GB (modelled, not measured)", created="2026-11-25",
        source="synthetic: sparse24.serve_app.autoscaler.synthetic.h100_like_profile (queueing-shaped, after seed Figs 2/4)",
        replica_startup_s=60.0,
        workloads=[WorkloadCapacity(name=n, prompt_tokens=p, output_tokens=o, points=_points(b, q, t))
                   for n, p, o, b, q, t in _H100_SPARSE_FP8])
