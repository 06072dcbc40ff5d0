"""A simulator scenario (YAML): profile + SLA + trace + fleet + our policy + the baselines' tuning grids."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict, List, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from .config import ItlSla
from .sim import FleetConfig, PolicySpec
from .trace import TraceSpec

_HERE = Path(__file__).resolve().parent


class Baseline(BaseModel):
    """A policy we compare with, tuned as a user would: every combination of ``grid`` applied to ``base``.
    Grid keys are PolicySpec fields; ``ttft.<field>`` / ``law.<field>`` reach the nested configs."""

    model_config = ConfigDict(extra="forbid")
    name: str
    base: PolicySpec
    grid: Dict[str, List[float]] = Field(default_factory=dict)
    goal_ratio: float = Field(gt=0.0, description="ours must use <= this x this baseline's best replica-hours")

    @model_validator(mode="after")
    def _check_grid(self):
        for key in self.grid:
            head, _, sub = key.partition(".")
            target = PolicySpec.model_fields.get(head)
            nested = {"ttft": self.base.ttft, "law": self.base.law}.get(head)
            if target is None or (sub and (nested is None or sub not in type(nested).model_fields)):
                raise ValueError(f"baseline {self.name!r}: grid key {key!r} is not a PolicySpec field")
        return self

    def policies(self) -> List[PolicySpec]:
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            top: Dict = {}
            nested: Dict[str, Dict] = {}
            for k, v in zip(keys, values):
                head, _, sub = k.partition(".")
                if sub:
                    nested.setdefault(head, {})[sub] = v
                else:
                    top[k] = v
            for head, upd in nested.items():
                top[head] = getattr(self.base, head).model_copy(update=upd)
            out.append(PolicySpec.model_validate({**self.base.model_dump(), **{
                k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in top.items()}, "label": ""}))
        return out or [self.base]


class SweepSettings(BaseModel):
    """The grid runs on a shorter trace (2 cores); its cheapest passing settings re-run on the full trace."""

    model_config = ConfigDict(extra="forbid")
    duration_s: Optional[PositiveFloat] = Field(None, description="grid trace length (s); None = the full trace")
    finalists: PositiveInt = Field(3, description="cheapest settings per baseline re-run on the full trace")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    profile_path: str = Field(description="capacity profile JSON (relative: to this package dir, then cwd)")
    workload: str
    sla: ItlSla
    trace: TraceSpec
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    ours: PolicySpec
    baselines: List[Baseline] = Field(min_length=1)
    sweep: SweepSettings = Field(default_factory=SweepSettings)
    goal_attainment: float = Field(0.995, gt=0.0, le=1.0, description="token attainment every policy must reach")

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Scenario":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"scenario {str(p)!r} does not exist")
        sc = cls.model_validate(yaml.safe_load(p.read_text()))
        # The SLA is stated once; the law uses the scenario's SLA.
        sc.ours = sc.ours.model_copy(update={"law": sc.ours.law.model_copy(update={"sla": sc.sla})})
        return sc

    def resolve_profile(self) -> Path:
        for cand in (Path(self.profile_path), _HERE / self.profile_path, Path.cwd() / self.profile_path):
            if cand.is_file():
                return cand
        raise FileNotFoundError(f"profile {self.profile_path!r} not found (tried {_HERE} and cwd)")

    def baseline(self, name: str) -> Baseline:
        for b in self.baselines:
            if b.name == name:
                return b
        raise KeyError(f"baseline {name!r} not in scenario; has {[b.name for b in self.baselines]}")

    def with_duration(self, duration_s: Optional[float]) -> "Scenario":
        if duration_s is None:
            return self
        return self.model_copy(update={"trace": self.trace.model_copy(update={"duration_s": duration_s})})

    def with_profile(self, profile_path: Optional[str], workload: Optional[str] = None) -> "Scenario":
        """The same scenario on another capacity profile (e.g. a measured one in place of the modelled)."""
        upd = {k: v for k, v in (("profile_path", profile_path), ("workload", workload)) if v is not None}
        return self.model_copy(update=upd) if upd else self
