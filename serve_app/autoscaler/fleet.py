"""One fleet observation from per-replica stats: the Ray policy and the simulator both build the law's
``Observation`` here, so what the law sees cannot differ between the two.

Per-replica stats are arrays aligned by replica, keyed by the ``stats`` names (seconds, req/s, tokens);
NaN marks a stat a replica did not report. Aggregation: arrival rates and running requests add up; ITL is
the sample-weighted mean of the replicas' percentile; TTFT is the worst replica's; prompt/output lengths
are arrival-weighted means.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from . import stats as S
from .law import Observation


def fleet_observation(now_s: float, running_replicas: int, target_replicas: int, min_replicas: int, max_replicas: int,
                      per_replica: Mapping[str, np.ndarray], itl_percentile: int, queued_requests: float = 0.0,
                      ongoing_fallback: float = 0.0) -> Observation:
    """The law's Observation (ms, req/s) from per-replica stats (s, req/s); ``ongoing_fallback`` is used
    when no replica reported its running requests (Ray's own in-flight count)."""
    n = max((len(v) for v in per_replica.values()), default=0)

    def col(name: str) -> np.ndarray:
        v = per_replica.get(name)
        return np.full(n, np.nan) if v is None else np.asarray(v, float)

    rate = np.nan_to_num(col(S.ARRIVAL_RATE_RPS))
    samples = np.nan_to_num(col(S.ITL_SAMPLES))
    itl = np.nan_to_num(col(S.ITL_PERCENTILE_KEYS[itl_percentile]))
    ttft = col(S.TTFT_P90_S)
    running = col(S.RUNNING_REQUESTS)
    total_rate, n_samples = float(rate.sum()), float(samples.sum())

    def rate_weighted(name: str) -> float:
        v = col(name)
        known = ~np.isnan(v)
        return float((v[known] * rate[known]).sum()) / total_rate if total_rate > 0 else 0.0

    ttft_pos = ttft[~np.isnan(ttft) & (ttft > 0)]
    has_running = bool((~np.isnan(running)).any())
    return Observation(
        now_s=float(now_s), running_replicas=int(running_replicas), target_replicas=int(target_replicas),
        min_replicas=int(min_replicas), max_replicas=int(max_replicas), arrival_rate_rps=total_rate,
        mean_prompt_tokens=rate_weighted(S.MEAN_PROMPT_TOKENS), mean_output_tokens=rate_weighted(S.MEAN_OUTPUT_TOKENS),
        itl_ms=1000.0 * float((itl * samples).sum()) / n_samples if n_samples > 0 else None,
        itl_samples=int(n_samples), ttft_ms=1000.0 * float(ttft_pos.max()) if len(ttft_pos) else None,
        ongoing_requests=float(np.nansum(running)) if has_running else float(ongoing_fallback),
        queued_requests=float(queued_requests))
