"""A simulator scenario (YAML): profile + SLA + trace + fleet + our policy + the default sweep."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from .config import ControlLawConfig, ItlSla
from .sim import FleetConfig, PolicySpec
from .trace import TraceSpec

_HERE = Path(__file__).resolve().parent


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    profile_path: str = Field(description="capacity profile JSON (relative: to this package dir, then cwd)")
    workload: str
    sla: ItlSla
    trace: TraceSpec
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    ours: PolicySpec
    default_base: PolicySpec = Field(default_factory=lambda: PolicySpec(kind="ray_default"))
    default_sweep: List[PositiveFloat] = Field(description="target_ongoing_requests values to try for Ray's default")
    goal_attainment: float = Field(0.99, gt=0.0, le=1.0, description="token attainment both policies must reach")
    goal_ratio: float = Field(0.8, gt=0.0, description="ours must use <= this x the best default's replica-hours")

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

    def default_policies(self) -> List[PolicySpec]:
        return [self.default_base.model_copy(update={"target_ongoing_requests": float(x), "kind": "ray_default", "label": ""})
                for x in self.default_sweep]

    def with_duration(self, duration_s: Optional[float]) -> "Scenario":
        if duration_s is None:
            return self
        return self.model_copy(update={"trace": self.trace.model_copy(update={"duration_s": duration_s})})
