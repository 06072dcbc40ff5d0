"""Ray Serve 2.60's autoscaling rules, re-implemented without Ray for the simulator.

Source: ray/serve/autoscaling_policy.py (``replica_queue_length_autoscaling_policy``,
``_apply_autoscaling_config``, ``_apply_scaling_factors``, ``_apply_delay_logic``) and
ray/serve/_private/autoscaling_state.py (``apply_bounds``, ceil of float decisions), Ray 2.60.0.
tests/serve_app/autoscaler/test_ray_rules.py checks equivalence against Ray's own functions.
Times are seconds. The state dict uses Ray's own keys so it round-trips with Ray's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

# Same strings as ray.serve._private.constants (checked by the equivalence test).
DECISION_COUNTERS_KEY = "__decision_counters"
DECISION_TIMESTAMP_KEY = "__decision_timestamp"
_EPS_S = 1e-6  # ray: _DELAY_ELAPSED_EPS_S


@dataclass(frozen=True)
class RayAutoscalingConfig:
    """The AutoscalingConfig fields the rules read (Ray 2.60 defaults)."""

    min_replicas: int = 1
    max_replicas: int = 1
    initial_replicas: Optional[int] = None
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: Optional[float] = None
    upscaling_factor: Optional[float] = None
    downscaling_factor: Optional[float] = None
    smoothing_factor: float = 1.0
    look_back_period_s: float = 30.0
    metrics_interval_s: float = 10.0

    def up_factor(self) -> float:
        return self.upscaling_factor or self.smoothing_factor

    def down_factor(self) -> float:
        return self.downscaling_factor or self.smoothing_factor


def apply_scaling_factors(desired: float, current: int, cfg: RayAutoscalingConfig) -> int:
    if current == 0:
        return math.ceil(desired)
    delta = desired - current
    factor = cfg.up_factor() if delta > 0 else cfg.down_factor()
    scaled = math.ceil(current + factor * delta)
    if math.ceil(float(desired)) < current and scaled == current:
        scaled -= 1
    return scaled


def apply_delay_logic(desired: int, curr_target: int, cfg: RayAutoscalingConfig,
                      state: Dict[str, Any], now: float) -> Tuple[int, Dict[str, Any]]:
    decision = curr_target
    counter = state.get(DECISION_COUNTERS_KEY, 0)
    ts = state.get(DECISION_TIMESTAMP_KEY, None)
    if desired > curr_target:
        if counter < 0:
            counter, ts = 0, None
        counter += 1
        if ts is None:
            ts = now
        if now - ts + _EPS_S >= cfg.upscale_delay_s:
            counter, ts, decision = 0, None, desired
    elif desired < curr_target:
        if counter > 0:
            counter, ts = 0, None
        counter -= 1
        if curr_target == 1:
            delay = cfg.downscale_to_zero_delay_s if cfg.downscale_to_zero_delay_s is not None else cfg.downscale_delay_s
        else:
            delay = cfg.downscale_delay_s
            desired = max(1, desired)
        if ts is None:
            ts = now
        if now - ts + _EPS_S >= delay:
            counter, ts, decision = 0, None, desired
    else:
        counter, ts = 0, None
    state[DECISION_COUNTERS_KEY] = counter
    state[DECISION_TIMESTAMP_KEY] = ts
    return decision, state


def cold_start_replicas(current: int, target: int, total_requests: float, cfg: RayAutoscalingConfig) -> Optional[int]:
    if current == 0 and total_requests > 0:
        return max(math.ceil(1 * cfg.up_factor()), target)
    return None


def default_policy_desired(total_requests: float, current: int, target: int, cfg: RayAutoscalingConfig) -> float:
    """``_core_replica_queue_length_policy``: replicas * (total ongoing / (target_ongoing * replicas))."""
    if current == 0:
        return target
    return current * (total_requests / (cfg.target_ongoing_requests * current))


def apply_bounds(n: int, cfg: RayAutoscalingConfig) -> int:
    return max(cfg.min_replicas, min(cfg.max_replicas, n))


def wrapped_decision(raw_desired: Callable[[], float], current: int, target: int, total_requests: float,
                     cfg: RayAutoscalingConfig, state: Dict[str, Any], now: float) -> Tuple[int, Dict[str, Any]]:
    """What Ray's controller does with any policy's output: cold-start fast path, scaling
    factors, delays, ceil, bounds. ``raw_desired`` is only called outside the cold-start path.
    Returns (bounded target, updated internal state)."""
    cold = cold_start_replicas(current, target, total_requests, cfg)
    if cold is not None:
        return apply_bounds(cold, cfg), state
    desired = apply_scaling_factors(raw_desired(), current, cfg)
    if current == 0 and desired > 0:  # Ray bypasses the delays when scaling up from zero
        state.setdefault(DECISION_COUNTERS_KEY, 0)
        state.setdefault(DECISION_TIMESTAMP_KEY, None)
    else:
        desired, state = apply_delay_logic(max(0, desired), target, cfg, state, now)
    return apply_bounds(int(math.ceil(desired)), cfg), state
