"""Ray Serve LLM's own SLA policy, ``TTFTAutoscalingPolicy``, re-implemented without Ray for the simulator.

Source: ray-project/ray master, ``python/ray/serve/llm/autoscaling.py`` (the ``model_id``-scoped version
built on ``ray.serve.autoscaling_policy.PrometheusQueryMixin``, July 2026, PR #64725 and follow-ups) and
its guide ``doc/source/serve/llm/user-guides/ttft-autoscaling.md``. It is in no PyPI release up to
Ray 2.60.0 (2.60.0 ships the mixin but not ``ray.serve.llm.autoscaling``); the equivalence test in
tests/serve_app/autoscaler/test_ray_llm_rules.py runs against the real class once an installed Ray has it.

Decision (per controller tick, returned to Ray's usual wrapper: delays, factors, bounds):
* no fresh Prometheus value -> hold ``target_num_replicas``;
* p99 TTFT > ``ttft_target_s`` -> ``target + 1``;
* else ongoing requests per running replica (``total_num_requests / running``) < ``idle_threshold``
  -> ``max(0, target - 1)``; else hold.
The p99 is PromQL ``histogram_quantile(0.99, sum(rate(ray_vllm_time_to_first_token_seconds_bucket
{model_name=...}[1m])) by (le))``: vLLM's TTFT histogram over the last ``rate_window_s``, quantile
interpolated inside a bucket as Prometheus does. Times in seconds.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat

#: vLLM 0.32 ``vllm.v1.metrics.buckets.TIME_TO_FIRST_TOKEN_BUCKETS`` (s); the +Inf bucket is implicit.
VLLM_TTFT_BUCKETS_S: Tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)


class TtftPolicyConfig(BaseModel):
    """``policy_kwargs`` of Ray's TTFTAutoscalingPolicy (its defaults) plus the metric pipeline's timing."""

    model_config = ConfigDict(extra="forbid")
    ttft_target_s: PositiveFloat = 2.0
    idle_threshold: NonNegativeFloat = 1.0
    rate_window_s: PositiveFloat = Field(60.0, description="PromQL rate() window (policy default '1m')")
    fetch_interval_s: PositiveFloat = Field(5.0, description="PrometheusQueryMixin default")
    cache_ttl_s: PositiveFloat = Field(15.0, description="PrometheusQueryMixin default")
    scrape_interval_s: PositiveFloat = Field(
        10.0, description="Prometheus scrape of replica metrics (Ray's generated prometheus.yml: 10s)")


def histogram_quantile(q: float, upper_bounds: Sequence[float], counts: Sequence[float]) -> Optional[float]:
    """Prometheus ``histogram_quantile``: ``counts[i]`` observations in bucket ``(ub[i-1], ub[i]]``,
    one more entry than ``upper_bounds`` for the +Inf bucket. None where Prometheus gives NaN (no
    observations): the policy then reads 'no data'."""
    total = float(sum(counts))
    if total <= 0.0:
        return None
    rank = q * total
    cum = 0.0
    for i, c in enumerate(counts):
        if cum + c >= rank and c > 0:
            if i == len(upper_bounds):  # quantile in the +Inf bucket: Prometheus returns the last finite bound
                return float(upper_bounds[-1])
            lo = 0.0 if i == 0 else float(upper_bounds[i - 1])
            hi = float(upper_bounds[i])
            return lo + (hi - lo) * (rank - cum) / c
        cum += c
    return float(upper_bounds[-1])


def ttft_policy_desired(p99_ttft_s: Optional[float], target: int, running: int, total_num_requests: float,
                        cfg: TtftPolicyConfig) -> Tuple[float, Dict[str, Any]]:
    """``TTFTAutoscalingPolicy.__call__``: (desired replicas, policy state) from the fresh p99 TTFT
    (None: Prometheus value missing or older than ``cache_ttl_s``)."""
    if p99_ttft_s is None:
        return float(target), {"signal": "no_data", "p99_ttft_s": None}
    state: Dict[str, Any] = {"p99_ttft_s": p99_ttft_s}
    if p99_ttft_s > cfg.ttft_target_s:
        return float(target + 1), {**state, "signal": "scale_up"}
    per_replica = total_num_requests / running if running > 0 else 0.0
    state["requests_per_replica"] = per_replica
    if per_replica < cfg.idle_threshold:
        return float(max(0, target - 1)), {**state, "signal": "scale_down"}
    return float(target), {**state, "signal": "steady"}


class TtftMetricPipeline:
    """What the policy reads at time t: Prometheus scrapes the replicas' TTFT histogram every
    ``scrape_interval_s``; the mixin's thread re-evaluates the PromQL every ``fetch_interval_s`` over the
    scraped samples; a value older than ``cache_ttl_s`` reads as missing. Fed per tick with the TTFTs
    (s) of requests whose first token came out in that tick."""

    def __init__(self, cfg: TtftPolicyConfig, buckets: Sequence[float] = VLLM_TTFT_BUCKETS_S):
        self.cfg, self.buckets = cfg, tuple(buckets)
        self._ticks: list = []  # (t, bucket counts) of observations not yet older than the window
        self._scraped: list = []  # (scrape time, cumulative-window counts) snapshots
        self._next_scrape = 0.0
        self._next_fetch = 0.0
        self._value: Optional[float] = None
        self._value_at = -math.inf

    def observe(self, t: float, ttft_s: np.ndarray) -> None:
        if len(ttft_s):
            idx = np.searchsorted(np.asarray(self.buckets), np.asarray(ttft_s, float), side="left")
            self._ticks.append((t, np.bincount(idx, minlength=len(self.buckets) + 1).astype(float)))
        if t + 1e-9 >= self._next_scrape:
            self._next_scrape = t + self.cfg.scrape_interval_s
            horizon = t - self.cfg.rate_window_s
            self._ticks = [(ts, c) for ts, c in self._ticks if ts > horizon]
            self._scraped = [(t, sum((c for _, c in self._ticks), np.zeros(len(self.buckets) + 1)))]
        if t + 1e-9 >= self._next_fetch:
            self._next_fetch = t + self.cfg.fetch_interval_s
            # rate() needs two samples in the window; with scrapes every 10 s over a 1 m window it has them.
            if self._scraped:
                v = histogram_quantile(0.99, self.buckets, self._scraped[-1][1])
                if v is not None:
                    self._value, self._value_at = v, t
                else:  # empty range: _fetch_prometheus_results drops the query, the cache holds no value
                    self._value, self._value_at = None, t

    def read(self, t: float) -> Optional[float]:
        if self._value is None or t - self._value_at > self.cfg.cache_ttl_s:
            return None
        return self._value
