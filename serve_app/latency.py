"""TTFT, ITL, TPOT, E2E and their percentiles: the one definition every number in this project uses.

It is `vllm bench serve`'s (vllm/benchmarks/lib/endpoint_request_func.py and vllm/benchmarks/serve.py,
vLLM 0.32). Used by the load test (`loadtest.metrics`, client-side chunk times), by the replicas' window
the autoscaler reads (`serve_app.autoscaler.stats`, engine-side chunk gaps) and by the simulator
(`serve_app.autoscaler.sim`, simulated gaps).

* A *chunk* is one streamed piece of output: an SSE message with a non-empty `choices` list on the client,
  one engine output step of a request on the replica. A chunk may carry several tokens.
* TTFT = first chunk time - send time. No chunk: undefined (None).
* ITL  = the gaps between successive chunks, one value per gap (a chunk carrying k tokens after a gap g
  gives ONE gap g, not k gaps of g/k). Fewer than two chunks: no gaps.
* E2E  = last chunk time - send time.
* TPOT = (E2E - TTFT) / (output_tokens - 1); undefined (None) when output_tokens <= 1.
* Percentiles: numpy's linear interpolation over the pooled values (`np.percentile`); with weights, the
  same rule applied as if each value were repeated `weight` times (fractional weights allowed).

Times are seconds on one clock; `summary_ms` reports milliseconds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Percentiles every report carries (vLLM's default `--metric-percentiles` plus p90).
PERCENTILES = (50, 90, 99)


def ttft_s(sent_s: float | None, chunk_times_s: Sequence[float]) -> float | None:
    """First chunk time - send time (s); None without a chunk or a send time."""
    if sent_s is None or not chunk_times_s:
        return None
    return chunk_times_s[0] - sent_s


def e2e_s(sent_s: float | None, chunk_times_s: Sequence[float]) -> float | None:
    """Last chunk time - send time (s); None without a chunk or a send time."""
    if sent_s is None or not chunk_times_s:
        return None
    return chunk_times_s[-1] - sent_s


def itl_gaps_s(chunk_times_s: Sequence[float]) -> list[float]:
    """Gaps between successive chunks (s), one per gap; [] for 0 or 1 chunk."""
    t = chunk_times_s
    return [b - a for a, b in zip(t, t[1:])]


def tpot_s(sent_s: float | None, chunk_times_s: Sequence[float], output_tokens: int) -> float | None:
    """(E2E - TTFT) / (output_tokens - 1) in seconds; None when output_tokens <= 1 or no chunk."""
    first, e2e = ttft_s(sent_s, chunk_times_s), e2e_s(sent_s, chunk_times_s)
    if first is None or output_tokens <= 1:
        return None
    return (e2e - first) / (output_tokens - 1)


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (q in [0, 100]), numpy linear interpolation; NaN for no values."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """`percentile` of values each repeated `weight` times, along the last axis (batched rows).

    Integer weights give exactly `np.percentile(np.repeat(values, weights), q)`; fractional weights
    generalise it (the simulator's tokens per tick are fractional). Rows whose weights sum to 0 give NaN.
    """
    v = np.asarray(values, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), v.shape)
    order = np.argsort(v, axis=-1, kind="stable")
    v = np.take_along_axis(v, order, axis=-1)
    w = np.take_along_axis(w, order, axis=-1)
    cum = np.cumsum(w, axis=-1)
    total = cum[..., -1:]
    h = np.clip((total - 1.0) * (q / 100.0), 0.0, None)  # position in the expanded (repeated) list
    lo = np.floor(h)
    hi = np.minimum(lo + 1.0, np.maximum(total - 1.0, 0.0))
    n = v.shape[-1]
    # value at expanded position k: the first value whose cumulative weight exceeds k
    i_lo = np.minimum((cum <= lo).sum(axis=-1, keepdims=True), n - 1)
    i_hi = np.minimum((cum <= hi).sum(axis=-1, keepdims=True), n - 1)
    v_lo = np.take_along_axis(v, i_lo, axis=-1)
    v_hi = np.take_along_axis(v, i_hi, axis=-1)
    out = v_lo + (h - lo) * (v_hi - v_lo)
    out = np.where(total > 0, out, np.nan)
    return out[..., 0]


def summary_ms(values_s: Sequence[float], prefix: str) -> dict[str, float]:
    """`{prefix}_mean_ms` and `{prefix}_p{50,90,99}_ms`; an empty list gives zeros, as vLLM reports."""
    arr = np.asarray(list(values_s) or [0.0], dtype=float) * 1000.0
    out = {f"{prefix}_mean_ms": float(arr.mean())}
    for p in PERCENTILES:
        out[f"{prefix}_p{p}_ms"] = float(np.percentile(arr, p))
    return out
