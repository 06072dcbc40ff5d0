"""Capacity profile: measured per-replica latency vs load, the autoscaler's performance model.

Written by the load-test sweep (loadtest/capacity.py builds these models, one replica per deployment), read by the ITL-SLA
policy (feed-forward: how many requests/s one replica serves within the SLA) and by the
simulator (how ITL and TTFT react to a replica's concurrency).

JSON schema (``schema_version: 1``)::

    {"schema_version": 1, "deployment": "sparse-fp8", "model": "...", "machine": "...",
     "created": "2026-11-25T12:00:00Z", "source": "sparse24-loadtest sweep ...",
     "replica_startup_s": 45.0,                      # optional: measured cold start
     "workloads": [
       {"name": "multi_turn_chat", "prompt_tokens": 512, "output_tokens": 256,
        "points": [                                  # one per measured QPS, ascending qps
          {"qps": 1.0, "concurrency": 1.4,           # per replica: req/s, mean in-flight
           "itl_p50_ms": 6.1, "itl_p90_ms": 6.8, "itl_p99_ms": 9.0,
           "ttft_p50_ms": 30.0, "ttft_p90_ms": 45.0}, ...]}]}

This module owns the schema: `sparse24.loadtest.capacity` builds these models to write profiles.

``concurrency`` may be omitted; it is then derived by Little's law from qps and the p50
latencies: qps * (ttft_p50 + (output_tokens - 1) * itl_p50) / 1000.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

Percentile = Literal[50, 90, 99]


class CapacityPoint(BaseModel):
    """Latency of ONE replica at one offered load (steady state)."""

    model_config = ConfigDict(extra="forbid")
    qps: NonNegativeFloat = Field(description="requests/s offered to (and achieved by) the replica")
    concurrency: Optional[NonNegativeFloat] = Field(None, description="mean in-flight requests")
    itl_p50_ms: PositiveFloat
    itl_p90_ms: PositiveFloat
    itl_p99_ms: PositiveFloat
    ttft_p50_ms: Optional[PositiveFloat] = None
    ttft_p90_ms: Optional[PositiveFloat] = None

    def itl_ms(self, pct: int) -> float:
        return {50: self.itl_p50_ms, 90: self.itl_p90_ms, 99: self.itl_p99_ms}[pct]


class WorkloadCapacity(BaseModel):
    """One workload (prompt/output lengths) measured at several loads."""

    model_config = ConfigDict(extra="forbid")
    name: str
    prompt_tokens: PositiveInt
    output_tokens: PositiveInt
    points: List[CapacityPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_points(self):
        qps = [p.qps for p in self.points]
        if any(b <= a for a, b in zip(qps, qps[1:])):
            raise ValueError(f"workload {self.name!r}: points must have strictly increasing qps, got {qps}")
        for p in self.points:
            if p.concurrency is None:
                ttft = p.ttft_p50_ms if p.ttft_p50_ms is not None else p.itl_p50_ms
                p.concurrency = p.qps * (ttft + (self.output_tokens - 1) * p.itl_p50_ms) / 1000.0
        return self

    def curve(self) -> "CapacityCurve":
        """Array view for fast queries (the policy asks every tick)."""
        pts = self.points
        return CapacityCurve(
            name=self.name, prompt_tokens=self.prompt_tokens, output_tokens=self.output_tokens,
            qps=np.array([p.qps for p in pts], float), conc=np.array([p.concurrency for p in pts], float),
            itl={q: np.array([p.itl_ms(q) for p in pts], float) for q in (50, 90, 99)},
            ttft_p50=np.array([p.ttft_p50_ms if p.ttft_p50_ms is not None else 2 * p.itl_p50_ms for p in pts], float))


@dataclass(eq=False)
class CapacityCurve:
    """One workload's curves as arrays. Per replica; ms, req/s, in-flight requests."""

    name: str
    prompt_tokens: int
    output_tokens: int
    qps: np.ndarray
    conc: np.ndarray
    itl: Dict[int, np.ndarray]
    ttft_p50: np.ndarray
    _memo: Dict = field(default_factory=dict)

    def itl_ms_at_qps(self, qps: float, pct: int = 90) -> float:
        """ITL (ms) at a per-replica load (req/s). Linear between points; beyond the last point
        extrapolated along the last segment (never below the last value); below the first,
        the first point's value."""
        x, y = self.qps, self.itl[pct]
        if qps <= x[-1]:
            return float(np.interp(qps, x, y))
        return float(_interp_extrap(np.array([qps], float), x, y)[0])

    def max_qps_at_itl(self, target_ms: float, pct: int = 90) -> float:
        """Largest per-replica load (req/s) whose ITL percentile stays <= target_ms.

        0.0 when even the lightest measured load misses the target (SLA infeasible).
        Past the last point it extrapolates along the last segment; capped at 2x the last
        measured qps so a flat curve never promises unbounded capacity.
        """
        key = (round(target_ms, 3), pct)
        if key not in self._memo:
            if len(self._memo) > 4096:  # the correction factor moves the target continuously
                self._memo.clear()
            self._memo[key] = self._max_qps_at_itl(target_ms, pct)
        return self._memo[key]

    def _max_qps_at_itl(self, target_ms: float, pct: int) -> float:
        x, y = self.qps, self.itl[pct]
        if y[0] > target_ms:
            return 0.0
        for i in range(1, len(x)):
            if y[i] > target_ms:
                return float(x[i - 1] + (target_ms - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
        if len(x) >= 2 and y[-1] > y[-2]:
            slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
            return float(min(x[-1] + (target_ms - y[-1]) / slope, 2.0 * x[-1]))
        return float(2.0 * x[-1]) if x[-1] > 0 else 0.0

    def itl_ms_at_concurrency(self, conc: Union[float, np.ndarray], pct: int = 50) -> np.ndarray:
        """ITL (ms) with ``conc`` requests in flight on a replica (vectorized)."""
        return _interp_extrap(np.atleast_1d(np.asarray(conc, float)), self.conc, self.itl[pct])

    def ttft_ms_at_concurrency(self, conc: Union[float, np.ndarray]) -> np.ndarray:
        """TTFT p50 (ms) at ``conc`` in flight (2x ITL p50 where TTFT was not measured)."""
        return _interp_extrap(np.atleast_1d(np.asarray(conc, float)), self.conc, self.ttft_p50)


def _interp_extrap(xq: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation, flat below x[0], last-segment extrapolation above x[-1]
    (monotone non-decreasing beyond the last point)."""
    out = np.interp(xq, x, y)
    if len(x) >= 2:
        slope = max(0.0, (y[-1] - y[-2]) / (x[-1] - x[-2])) if x[-1] > x[-2] else 0.0
        hi = xq > x[-1]
        out[hi] = y[-1] + slope * (xq[hi] - x[-1])
    return out


class CapacityProfile(BaseModel):
    """A deployment's capacity curves, one per workload (see module docstring for the JSON)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1
    deployment: str
    model: str
    machine: str
    created: str
    source: str = Field(description="command or provenance (e.g. 'synthetic: ...')")
    replica_startup_s: Optional[NonNegativeFloat] = None
    workloads: List[WorkloadCapacity] = Field(min_length=1)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "CapacityProfile":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"capacity profile {str(p)!r} does not exist")
        try:
            return cls.model_validate(json.loads(p.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"capacity profile {str(p)!r} is not valid JSON: {e}") from e

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.model_dump(mode="json"), indent=1) + "\n")

    def workload(self, name: Optional[str] = None, prompt_tokens: float = 0, output_tokens: float = 0) -> WorkloadCapacity:
        """The named workload, else the one nearest to the observed mean lengths (log distance)."""
        if name is not None:
            for w in self.workloads:
                if w.name == name:
                    return w
            raise KeyError(f"workload {name!r} not in profile; has {[w.name for w in self.workloads]}")
        if prompt_tokens <= 0 or output_tokens <= 0:
            return self.workloads[0]

        def dist(w: WorkloadCapacity) -> float:
            return abs(math.log(w.prompt_tokens / prompt_tokens)) + abs(math.log(w.output_tokens / output_tokens))

        return min(self.workloads, key=dist)
