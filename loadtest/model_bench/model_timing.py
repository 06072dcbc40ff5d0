"""Timing primitives for the model benchmark: CUDA-graph capture, event timing, decode/prefill steps.

On CUDA every step is captured once into a CUDA graph and replayed (launch overhead would otherwise hide
the GEMMs at batch 1); times come from CUDA events. On CPU (tests) the same code runs eagerly and is timed
with the host clock.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from .model_llama import KVCache, Transformer


class GraphFn:
    """`fn` captured into a CUDA graph (after two warm-up calls on a side stream), or run eagerly."""

    failures: list[str] = []  # capture errors seen in this process (the step then runs eagerly)

    def __init__(self, fn: Callable[[], object], device, use_graph: bool = True):
        self.fn = fn
        self.graph = None
        if torch.device(device).type == "cuda" and use_graph:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    fn()
                torch.cuda.synchronize()
                self.graph = graph
            except RuntimeError as e:  # keep measuring, eagerly, and say so in the results
                GraphFn.failures.append(f"{getattr(fn, '__qualname__', fn)}: {str(e)[:300]}")
                torch.cuda.synchronize()

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.fn()

    def close(self) -> None:
        self.graph = None


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def elapsed_ms(fn: Callable[[], None], device, calls: int = 1) -> float:
    """Wall time of `calls` back-to-back calls of fn, in ms (CUDA events on GPU)."""
    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) * 1e3


def median_ms(fn: Callable[[], None], device, reps: int, warmup: int = 1, calls: int = 1,
              before: Callable[[], None] | None = None) -> float:
    """Median over `reps` of the mean time of `calls` calls, ms per call; `before` runs untimed each rep."""
    for _ in range(warmup):
        if before:
            before()
        fn()
    times = []
    for _ in range(reps):
        if before:
            before()
        sync(device)
        times.append(elapsed_ms(fn, device, calls) / calls)
    return statistics.median(times)


class DecodeStep:
    """One greedy decode step for the cache's batch: logits -> argmax -> next input, positions += 1.

    Replaying it N times generates N tokens per sequence; `set_position(p)` rewinds every sequence to p.
    """

    def __init__(self, model: Transformer, cache: KVCache, use_graph: bool = True, seed: int = 0):
        dev = cache.k.device
        g = torch.Generator(device="cpu").manual_seed(seed)
        self.tokens = torch.randint(0, model.args.vocab_size, (cache.batch,), generator=g).to(dev)
        self.positions = torch.zeros(cache.batch, dtype=torch.int32, device=dev)
        self.model, self.cache, self.device = model, cache, dev

        def step():
            logits = model.decode(self.tokens, self.positions, cache)
            self.tokens.copy_(logits.argmax(dim=-1))
            self.positions.add_(1)

        first = self.tokens.clone()
        self.step = GraphFn(step, dev, use_graph)
        self.tokens.copy_(first)  # undo the capture's warm-up steps
        self.positions.zero_()

    def set_position(self, p: int) -> None:
        self.positions.fill_(p)

    def ms_per_token(self, start_pos: int, steps: int, reps: int = 3) -> float:
        """Median over reps of the mean step time (ms) for `steps` steps starting at start_pos."""
        return median_ms(self.step, self.device, reps, warmup=1, calls=steps,
                         before=lambda: self.set_position(start_pos))


class PrefillStep:
    """Prefill of `tokens` random prompt tokens per sequence from position 0 (logits of the last token)."""

    def __init__(self, model: Transformer, cache: KVCache, tokens: int, use_graph: bool = True, seed: int = 0):
        dev = cache.k.device
        g = torch.Generator(device="cpu").manual_seed(seed)
        self.tokens = torch.randint(0, model.args.vocab_size, (cache.batch, tokens), generator=g).to(dev)
        self.positions = torch.arange(tokens, dtype=torch.int32, device=dev).repeat(cache.batch)
        self.device = dev
        self.step = GraphFn(lambda: model.prefill(self.tokens, cache, self.positions), dev, use_graph)

    def ms(self, reps: int = 5) -> float:
        return median_ms(self.step, self.device, reps, warmup=1)
