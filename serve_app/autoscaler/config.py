"""SLA and control-law settings (data, validated once): what the policy promises and how it reacts.

In Ray Serve these arrive as ``autoscaling_config.policy.policy_kwargs`` (JSON); in the
simulator from its YAML/CLI. Units: ms for latency targets, seconds for durations.
"""

from __future__ import annotations

from typing import Literal, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator


class ItlSla(BaseModel):
    """The promise: ITL percentile <= target (ms), optionally TTFT p90 <= target (ms)."""

    model_config = ConfigDict(extra="forbid")
    itl_percentile: Literal[50, 90, 99] = 90
    itl_target_ms: PositiveFloat = 50.0
    ttft_target_ms: Optional[PositiveFloat] = None


class ControlLawConfig(BaseModel):
    """Knobs of the ITL-SLA control law (defaults chosen in the simulator, see loadtest/results/autoscaler/)."""

    model_config = ConfigDict(extra="forbid")
    sla: ItlSla = Field(default_factory=ItlSla)
    workload: Optional[str] = Field(None, description="profile workload name; None = nearest to observed lengths")
    headroom: float = Field(0.2, ge=0.0, lt=0.9, description="plan for ITL <= (1-headroom)*target")
    spare_capacity: float = Field(0.0, ge=0.0, le=4.0, description="extra capacity fraction kept for bursts that outrun replica start-up")
    downscale_margin: float = Field(0.1, ge=0.0, lt=0.9, description="extra capacity fraction kept when scaling down (deadband)")
    upscale_stable_s: float = Field(2.0, ge=0.0, description="feed-forward demand must exceed capacity this long")
    downscale_stable_s: float = Field(60.0, ge=0.0, description="fewer replicas must suffice this long before scaling down")
    breach_stable_s: float = Field(3.0, ge=0.0, description="measured SLA breach must last this long to add replicas")
    settle_s: float = Field(15.0, ge=0.0, description="after replicas change, wait this long before feedback adds more")
    min_itl_samples: PositiveInt = Field(20, description="token gaps needed before measured ITL is trusted")
    correction_tau_s: PositiveFloat = Field(60.0, description="time constant of the measured/expected ITL correction")
    correction_bounds: Tuple[PositiveFloat, PositiveFloat] = (0.5, 3.0)
    feedback_low_watermark: float = Field(0.5, gt=0.0, lt=1.0, description="without a profile: scale down only while ITL < this * target")
    forecast_lead_s: float = Field(0.0, ge=0.0, le=600.0, description="size for the arrival rate this far ahead "
                                   "(rising trend only; about replica start-up + stats lag); 0 = size for the current rate")
    trend_window_s: PositiveFloat = Field(30.0, description="window of the arrival-rate trend fit (s)")
    trend_significance: float = Field(2.0, ge=0.0, description="use the trend only when slope > this x its standard error")
    queue_drain_s: PositiveFloat = Field(30.0, description="plan to drain requests queued at the router within this time")
    max_step_up: PositiveInt = Field(4, description="most replicas one feedback decision adds")

    @model_validator(mode="after")
    def _check(self):
        lo, hi = self.correction_bounds
        if not lo <= 1.0 <= hi:
            raise ValueError(f"correction_bounds must bracket 1.0, got {self.correction_bounds}")
        return self


class ItlSlaPolicyConfig(ControlLawConfig):
    """Everything the Ray Serve policy class takes as ``policy_kwargs``."""

    profile_path: Optional[str] = Field(None, description="capacity profile JSON; None = pure feedback")
    log_every_s: PositiveFloat = Field(10.0, description="min seconds between repeated 'hold' log lines")
