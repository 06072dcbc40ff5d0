"""Workload profiles (prompt/output token counts per use case) loaded from YAML and scaled for small models.

The defaults live in `profiles.yaml` next to this module (the seed blog's Table 2 use cases).
"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, model_validator

DEFAULT_PROFILES_PATH = Path(__file__).with_name("profiles.yaml")


class WorkloadProfile(BaseModel):
    """One use case: every request has exactly `prompt_tokens` prompt tokens and asks for `output_tokens`."""

    name: str
    prompt_tokens: int = Field(ge=1, le=1_048_576)
    output_tokens: int = Field(ge=1, le=1_048_576)
    description: str = ""


class ProfileScale(BaseModel):
    """Multiplies both token counts by `factor` (rounded), never below `min_tokens`."""

    factor: float = Field(gt=0, le=1.0)
    min_tokens: int = Field(1, ge=1)

    def apply(self, profile: WorkloadProfile) -> WorkloadProfile:
        def scale(n: int) -> int:
            return max(self.min_tokens, round(n * self.factor))

        return profile.model_copy(update=dict(
            prompt_tokens=scale(profile.prompt_tokens), output_tokens=scale(profile.output_tokens)))


class ProfileSet(BaseModel):
    profiles: dict[str, WorkloadProfile]
    scales: dict[str, ProfileScale] = Field(default_factory=lambda: {"full": ProfileScale(factor=1.0)})

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data):
        if isinstance(data, dict) and isinstance(data.get("profiles"), dict):
            data = dict(data)
            data["profiles"] = {k: {**v, "name": k} if isinstance(v, dict) else v
                                for k, v in data["profiles"].items()}
        return data

    def get(self, name: str, scale: str = "full") -> WorkloadProfile:
        """The profile `name` scaled by the scale named `scale`; clear errors for unknown names."""
        if name not in self.profiles:
            raise KeyError(f"unknown workload profile {name!r}; known: {sorted(self.profiles)}")
        if scale not in self.scales:
            raise KeyError(f"unknown profile scale {scale!r}; known: {sorted(self.scales)}")
        return self.scales[scale].apply(self.profiles[name])


def load_profiles(path: str | Path | None = None) -> ProfileSet:
    """Load a profile YAML file (default: the bundled `profiles.yaml`)."""
    p = Path(path) if path else DEFAULT_PROFILES_PATH
    if not p.is_file():
        raise FileNotFoundError(f"workload profile file not found: {p}")
    return ProfileSet.model_validate(yaml.safe_load(p.read_text()))
