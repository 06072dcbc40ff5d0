"""Arrival traces for the simulator: Poisson, bursty gamma, step, diurnal, bursty-diurnal, or a file.

Every generator is deterministic given ``seed``. Non-homogeneous traces are drawn as a
unit-rate renewal process (exponential or gamma inter-arrivals) in operational time
Lambda(t) = integral of rate, then mapped back through Lambda^-1: the rate shape and the
burstiness (coefficient of variation ``cv`` of inter-arrival gaps) are set independently.
Times in seconds, rates in requests/s.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Literal, Optional, Tuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt


class TraceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["poisson", "gamma", "step", "diurnal", "bursty", "file"] = "bursty"
    duration_s: PositiveFloat = 86_400.0
    rate_rps: NonNegativeFloat = Field(10.0, description="base (mean) rate")
    cv: PositiveFloat = Field(1.0, description="coefficient of variation of gaps (1 = Poisson, >1 = bursty)")
    steps: List[Tuple[float, float]] = Field(default_factory=list, description="step: [(start_s, rate_rps), ...]")
    diurnal_amplitude: float = Field(0.5, ge=0.0, le=1.0, description="rate swings base*(1 +- amplitude)")
    diurnal_period_s: PositiveFloat = 86_400.0
    bursts_per_hour: NonNegativeFloat = 3.0
    burst_multiplier: PositiveFloat = 2.0
    burst_mean_s: PositiveFloat = 180.0
    burst_ramp_s: NonNegativeFloat = Field(60.0, description="linear ramp in and out of a burst (0 = instant step)")
    path: Optional[str] = Field(None, description="file: CSV/JSONL with arrival_s[,prompt_tokens,output_tokens]")
    prompt_tokens: PositiveInt = 512
    output_tokens: PositiveInt = 256
    seed: int = 0


@dataclass(frozen=True)
class Trace:
    arrival_s: np.ndarray  # sorted, float64
    prompt_tokens: np.ndarray  # int
    output_tokens: np.ndarray  # int
    rate_grid_s: np.ndarray  # time grid of the intended rate (for plots)
    rate_grid_rps: np.ndarray
    duration_s: float

    def __len__(self) -> int:
        return len(self.arrival_s)


_GRID_S = 1.0  # resolution of the rate function (s)


def _rate_function(spec: TraceSpec, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, spec.duration_s + _GRID_S, _GRID_S)
    if spec.kind in ("poisson", "gamma"):
        r = np.full_like(t, spec.rate_rps)
    elif spec.kind == "step":
        if not spec.steps:
            raise ValueError("trace kind 'step' needs steps: [(start_s, rate_rps), ...]")
        r = np.zeros_like(t)
        for start, rate in sorted(spec.steps):
            r[t >= start] = rate
    else:  # diurnal, bursty
        r = spec.rate_rps * (1.0 - spec.diurnal_amplitude * np.cos(2 * np.pi * t / spec.diurnal_period_s))
        if spec.kind == "bursty" and spec.bursts_per_hour > 0:
            n = rng.poisson(spec.bursts_per_hour * spec.duration_s / 3600.0)
            starts = rng.uniform(0, spec.duration_s, n)
            lens = rng.exponential(spec.burst_mean_s, n)
            mult = np.ones_like(t)
            ramp = max(spec.burst_ramp_s, 1e-9)
            for s, d in zip(starts, lens):
                # trapezoid: 0 -> 1 over ramp, hold d, 1 -> 0 over ramp
                shape = np.clip(np.minimum((t - s) / ramp, (s + d + ramp - t) / ramp), 0.0, 1.0)
                mult *= 1.0 + (spec.burst_multiplier - 1.0) * shape
            r = r * mult
    return t, r


def _unit_renewal(total: float, cv: float, rng: np.random.Generator) -> np.ndarray:
    """Points of a unit-rate renewal process on [0, total): gamma gaps with mean 1, given cv."""
    n_guess = int(total + 6 * np.sqrt(total + 1) * max(1.0, cv) + 16)
    shape = 1.0 / (cv * cv)
    pts = []
    last = 0.0
    while last < total:
        gaps = rng.gamma(shape, 1.0 / shape, n_guess) if cv != 1.0 else rng.exponential(1.0, n_guess)
        c = last + np.cumsum(gaps)
        pts.append(c)
        last = c[-1]
    out = np.concatenate(pts)
    return out[out < total]


def _load_file(spec: TraceSpec) -> Trace:
    p = Path(spec.path or "")
    if not p.is_file():
        raise FileNotFoundError(f"trace file {spec.path!r} does not exist")
    rows = []
    if p.suffix == ".jsonl":
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    else:
        with p.open() as f:
            rows = list(csv.DictReader(f))
    if not rows or "arrival_s" not in rows[0]:
        raise ValueError(f"trace file {str(p)!r} needs an 'arrival_s' column/key, got {list(rows[0]) if rows else 'no rows'}")
    a = np.array([float(r["arrival_s"]) for r in rows])
    order = np.argsort(a, kind="stable")
    pt = np.array([int(r.get("prompt_tokens") or spec.prompt_tokens) for r in rows])[order]
    ot = np.array([int(r.get("output_tokens") or spec.output_tokens) for r in rows])[order]
    a = a[order] - a[order][0]
    dur = float(a[-1]) + 1.0
    grid = np.arange(0.0, dur + _GRID_S, 60.0)
    counts, _ = np.histogram(a, bins=np.append(grid, grid[-1] + 60.0))
    return Trace(a, pt, ot, grid, counts / 60.0, dur)


def make_trace(spec: TraceSpec) -> Trace:
    """Generate (or load) the trace described by ``spec``."""
    if spec.kind == "file":
        return _load_file(spec)
    rng = np.random.default_rng(spec.seed)
    t, r = _rate_function(spec, rng)
    cum = np.concatenate([[0.0], np.cumsum(r[:-1] * _GRID_S)])  # Lambda(t) on the grid
    cv = spec.cv if spec.kind != "poisson" else 1.0
    u = _unit_renewal(cum[-1], cv, rng)
    # invert Lambda (strictly increasing where r > 0; np.interp handles flat parts by taking the first)
    keep = np.concatenate([[True], np.diff(cum) > 0])
    arr = np.interp(u, cum[keep], t[keep])
    arr = arr[arr < spec.duration_s]
    n = len(arr)
    return Trace(arr, np.full(n, spec.prompt_tokens), np.full(n, spec.output_tokens), t, r, spec.duration_s)
