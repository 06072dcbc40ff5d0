"""tables.yaml, validated: which use cases, how many requests, which engine arguments (same for every variant)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PATH = Path(__file__).with_name("tables.yaml")


class UseCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    prompt_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)
    throughput_requests: int = Field(ge=1, le=4096)


class LatencyRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warmup_iters: int = Field(1, ge=0)
    warmup_tokens: int = Field(16, ge=1)
    iters: int = Field(2, ge=1)


class ThroughputRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warmup_requests: int = Field(8, ge=1)
    warmup_tokens: int = Field(16, ge=1)


class TablesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: dict[str, Any]
    use_cases: list[UseCase]
    latency: LatencyRun = LatencyRun()
    throughput: ThroughputRun = ThroughputRun()

    @model_validator(mode="after")
    def _fits_context(self) -> "TablesConfig":
        limit = self.engine.get("max_model_len")
        for uc in self.use_cases:
            if limit is not None and uc.prompt_tokens + uc.output_tokens > limit:
                raise ValueError(f"use case {uc.name}: {uc.prompt_tokens} + {uc.output_tokens} tokens exceed "
                                 f"engine.max_model_len {limit}")
        return self

    def only(self, names: list[str]) -> "TablesConfig":
        known = {u.name for u in self.use_cases}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"unknown use cases {unknown}; known: {sorted(known)}")
        return self.model_copy(update={"use_cases": [u for u in self.use_cases if u.name in names]})


def load_tables_config(path: str | Path | None = None, profiles_path: str | Path | None = None,
                       scale: str = "full") -> TablesConfig:
    """Read tables.yaml; token counts come from the load test's use-case profiles (one list of use cases)."""
    from ..profiles import load_profiles

    path = Path(path) if path else DEFAULT_PATH
    raw = yaml.safe_load(path.read_text()) or {}
    profiles = load_profiles(profiles_path)
    cases = []
    for name, extra in (raw.get("use_cases") or {}).items():
        try:
            prof = profiles.get(name, scale)
        except KeyError as e:
            raise ValueError(f"{path}: {e.args[0]}") from None
        cases.append({"name": name, "prompt_tokens": prof.prompt_tokens, "output_tokens": prof.output_tokens,
                      **(extra or {})})
    return TablesConfig.model_validate({**raw, "use_cases": cases})
