"""Sweep runner: deployments x profiles x QPS points, headless and bounded, writing results as it goes.

Each point runs warm-up + measurement seconds of open-loop arrivals (warm-up requests are sent but not
measured), drains for at most `drain_timeout_s`, and is summarized (`metrics.summarize_point`). QPS values
are either listed or searched: multiply from `start_qps` until a point is unsteady (saturation) or over
the SLA, then fill geometric points inside the brackets where the curve crosses the SLA and saturates.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from .metrics import SteadyStateCriteria

SLA_METRICS = tuple(f"{m}_{s}_ms" for m in ("itl", "tpot", "ttft", "e2e") for s in ("mean", "p50", "p90", "p99"))


class DeploymentTarget(BaseModel):
    """One served model to measure (e.g. dense-bf16, dense-fp8, sparse-fp8 side by side)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    base_url: str = Field(description="http://host:port of the OpenAI-compatible server")
    model: str | None = Field(None, description="served model name; default: first in /v1/models")
    tokenizer: str | None = Field(None, description="local model dir; default: /v1/models `root` "
                                  "(our app's built-in names resolve to its model cache)")
    replicas: int = Field(1, ge=1, description="replicas behind base_url (capacity per replica = total / this)")
    api_key_env: str | None = Field(None, description="env var holding a bearer token, if the server needs one")


class AutoQps(BaseModel):
    start_qps: float = Field(0.5, gt=0)
    factor: float = Field(2.0, gt=1.0)
    max_qps: float = Field(64.0, gt=0)
    fill_points: int = Field(2, ge=0, le=8, description="extra points inside each bracket")
    max_points: int = Field(10, ge=1, le=50)


class SlaSpec(BaseModel):
    metric: str = Field("itl_p90_ms", description=f"one of {SLA_METRICS}")
    target_ms: float = Field(gt=0)

    @model_validator(mode="after")
    def _known(self):
        if self.metric not in SLA_METRICS:
            raise ValueError(f"sla.metric {self.metric!r} unknown; expected one of {SLA_METRICS}")
        return self


class SweepConfig(BaseModel):
    deployments: list[DeploymentTarget] = Field(min_length=1)
    profiles: list[str] = Field(min_length=1)
    profile_scale: str = "full"
    profiles_file: str | None = None
    qps: list[float] | None = Field(None, description="explicit QPS points (requests/s)")
    auto_qps: AutoQps | None = None
    stop_after_unsteady: int | None = Field(
        None, ge=1, description="with listed `qps`: skip the rest of a deployment's list (ascending) after this "
        "many unsteady points; past saturation a point only queues, and its backlog disturbs what comes next")
    duration_s: float = Field(60.0, gt=0, description="measured seconds of arrivals per point")
    warmup_s: float = Field(10.0, ge=0, description="unmeasured seconds of arrivals before the window")
    drain_timeout_s: float = Field(60.0, ge=0)
    ready_timeout_s: float = Field(300.0, ge=0, description="how long warm-up retries while engines start")
    burstiness: float = Field(1.0, gt=0, description="gamma shape of inter-arrival gaps; 1 = Poisson")
    api: Literal["completions", "chat"] = "completions"
    max_in_flight: int = Field(256, ge=1, le=10000)
    read_timeout_s: float = Field(300.0, gt=0, description="max gap between chunks before a request fails")
    sla: SlaSpec
    goodput_slo_ms: dict[str, float] = Field(default_factory=dict, description="ttft/tpot/e2el SLOs (ms)")
    baseline: str | None = Field(None, description="deployment the fixed-QPS table compares against")
    steady: dict = Field(default_factory=dict, description="SteadyStateCriteria overrides")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self):
        if (self.qps is None) == (self.auto_qps is None):
            raise ValueError("give exactly one of `qps` (a list) or `auto_qps`")
        if self.qps is not None and (not self.qps or any(q <= 0 for q in self.qps)):
            raise ValueError(f"qps must be a non-empty list of positive requests/s, got {self.qps}")
        if self.stop_after_unsteady is not None and (self.qps is None or self.qps != sorted(self.qps)):
            raise ValueError("stop_after_unsteady needs an ascending `qps` list")
        names = [d.name for d in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"deployment names must be unique, got {names}")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not a deployment ({names})")
        SteadyStateCriteria(**self.steady)  # unknown keys fail here
        return self

    @classmethod
    def load(cls, path: str | Path) -> "SweepConfig":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"sweep config not found: {p}")
        return cls.model_validate(yaml.safe_load(p.read_text()))


def fill_qps(points: list[dict], sla_metric: str, sla_ms: float, fill: int) -> list[float]:
    """New QPS values inside the brackets [last good, first bad] for steadiness and for the SLA,
    geometrically spaced (`fill` per bracket), excluding values already measured."""
    pts = sorted(points, key=lambda p: p["target_qps"])
    measured = {round(p["target_qps"], 9) for p in pts}
    brackets = []
    for good in (lambda p: p["steady"], lambda p: p["steady"] and p[sla_metric] <= sla_ms):
        flags = [good(p) for p in pts]
        if False in flags and flags.index(False) > 0:
            i = flags.index(False)
            brackets.append((pts[i - 1]["target_qps"], pts[i]["target_qps"]))
    out: list[float] = []
    for lo, hi in dict.fromkeys(brackets):
        for k in range(1, fill + 1):
            q = round(lo * (hi / lo) ** (k / (fill + 1)), 4)
            if round(q, 9) not in measured and q not in out:
                out.append(q)
    return sorted(out)


def auto_points(auto: AutoQps, sla: SlaSpec, measure: Callable[[float], dict]) -> list[dict]:
    """Search QPS: geometric ramp until unsteady or over the SLA, then fill the brackets."""
    points: list[dict] = []
    q = auto.start_qps
    while q <= auto.max_qps and len(points) < auto.max_points:
        p = measure(q)
        points.append(p)
        if not p["steady"]:
            break
        q = round(q * auto.factor, 4)
    for q in fill_qps(points, sla.metric, sla.target_ms, auto.fill_points):
        if len(points) >= auto.max_points:
            break
        points.append(measure(q))
    return sorted(points, key=lambda p: p["target_qps"])


def point_seed(seed: int, deployment: str, profile: str, qps: float) -> int:
    """Deterministic per-point seed (the same arrivals for every deployment at a given profile and QPS)."""
    del deployment  # identical schedules across deployments make their curves directly comparable
    return zlib.crc32(f"{seed}/{profile}/{qps:.6f}".encode())


def api_key(dep: DeploymentTarget) -> str | None:
    if dep.api_key_env is None:
        return None
    key = os.environ.get(dep.api_key_env)
    if not key:
        raise ValueError(f"deployment {dep.name!r}: env var {dep.api_key_env} is not set")
    return key
