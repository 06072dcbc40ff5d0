"""GPU timing with CUDA events: warm-up, L2 flushed before every repetition, median in microseconds.

Like triton.testing.do_bench: a 256 MiB buffer is zeroed before each timed call to evict the 50 MB L2.
By default the timed call is the replay of a CUDA graph of fn (how vLLM serves decode), so host-side
launch overhead (Python, ctypes, custom-op dispatch) is not counted; graph=False times eager calls.
"""
from __future__ import annotations

import statistics
from typing import Callable

import torch

_flush: dict[int, torch.Tensor] = {}


def _flush_buf(device: torch.device) -> torch.Tensor:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _flush:
        _flush[idx] = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device=device)
    return _flush[idx]


def bench_us(fn: Callable[[], object], device: torch.device | str = "cuda", warmup: int = 3, reps: int | None = None,
             budget_ms: float = 30.0, max_reps: int = 60, min_reps: int = 5, graph: bool = True) -> float:
    """Median time of fn() in microseconds (L2 flushed before each repetition).

    graph=True (default) captures fn in a CUDA graph and times its replays: GPU time without the host's
    launch overhead, as served under CUDA graphs; graph=False times eager calls.
    """
    device = torch.device(device)
    buf = _flush_buf(device)
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize(device)
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        torch.cuda.synchronize(device)
        fn = g.replay
    if reps is None:
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        buf.zero_()
        s.record()
        fn()
        e.record()
        e.synchronize()
        est = max(s.elapsed_time(e), 1e-3)
        reps = int(min(max_reps, max(min_reps, budget_ms / (est + 0.1))))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        buf.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize(device)
    return 1000.0 * statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))
