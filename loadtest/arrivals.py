"""Open-loop arrival processes: request send times that do not depend on responses.

Same process as `vllm bench serve --request-rate R --burstiness B`: inter-arrival gaps are
Gamma(shape=B, scale=1/(R*B)), so the mean gap is 1/R and the coefficient of variation is 1/sqrt(B).
B=1 is Poisson; B<1 is burstier; B=inf is a fixed interval.
"""
from __future__ import annotations

import math

import numpy as np


def arrival_times(rate_qps: float, duration_s: float, burstiness: float = 1.0, seed: int = 0) -> np.ndarray:
    """Send times (s, from 0) of all arrivals in [0, duration_s) at mean rate `rate_qps` requests/s."""
    if not (rate_qps > 0 and math.isfinite(rate_qps)):
        raise ValueError(f"rate_qps must be a positive finite number of requests/s, got {rate_qps!r}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0 seconds, got {duration_s!r}")
    if not burstiness > 0:
        raise ValueError(f"burstiness must be > 0 (1 = Poisson), got {burstiness!r}")
    rng = np.random.default_rng(seed)
    expected = rate_qps * duration_s
    # draw enough gaps to pass duration_s with overwhelming probability, then extend if not
    n = int(expected + 10 * math.sqrt(expected + 1) + 10)
    times = np.empty(0)
    last = 0.0
    while True:
        if math.isinf(burstiness):
            gaps = np.full(n, 1.0 / rate_qps)
        else:
            gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate_qps * burstiness), size=n)
        chunk = last + np.cumsum(gaps)
        times = np.concatenate([times, chunk])
        last = float(times[-1])
        if last >= duration_s:
            return times[times < duration_s]


def dispersion(times_s: np.ndarray) -> tuple[float, float]:
    """(rate in requests/s, coefficient of variation of the gaps) of a sequence of send times."""
    gaps = np.diff(np.concatenate([[0.0], np.asarray(times_s, dtype=float)]))
    if gaps.size < 2:
        raise ValueError("need at least two arrivals to measure rate and dispersion")
    return float(1.0 / gaps.mean()), float(gaps.std() / gaps.mean())
