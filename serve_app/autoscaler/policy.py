"""Ray Serve adapter: ``ItlSlaPolicy`` is a class-callable custom autoscaling policy.

Enable it in a Serve config (one setting)::

    autoscaling_config:
      policy:
        policy_function: sparse24.serve_app.autoscaler.policy:ItlSlaPolicy
        policy_kwargs: {sla: {itl_percentile: 90, itl_target_ms: 50},
                        profile_path: serve_app/autoscaler/profiles/tiny_cpu.json}

Ray builds the class once with ``policy_kwargs`` and calls it about every 0.1 s with an
``AutoscalingContext``; replicas report ``stats.ALL_STATS`` from ``record_autoscaling_stats``.
Ray still applies upscale/downscale delays, factors and min/max on top of our answer, so keep
``upscale_delay_s`` small and let the law's own hysteresis do the waiting.
This module only translates: the decision is ``law.decide`` (the simulator runs the same).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import stats as S
from .config import ItlSlaPolicyConfig
from .fleet import fleet_observation
from .law import Decision, Observation, decide
from .profile import CapacityProfile

logger = logging.getLogger("ray.serve")
_REPO_ROOT = Path(__file__).resolve().parents[2]
#: Replica stats older than this (s) are ignored (replica stuck or gone).
STALE_AFTER_S = 30.0


def resolve_profile_path(path: str) -> Path:
    """Absolute, or relative to the cwd, or relative to the repository root (the Serve
    controller's cwd is Ray's session dir, not where ``serve run`` was typed)."""
    p = Path(path).expanduser()
    for cand in (p, Path.cwd() / p, _REPO_ROOT / p):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"capacity profile {path!r} not found (tried cwd and {_REPO_ROOT})")


def _latest(series) -> Optional[Tuple[float, float]]:
    """(timestamp, value) of the last point of a Ray TimeSeries, or of a plain number."""
    if series is None:
        return None
    if isinstance(series, (int, float)):
        return (math.nan, float(series))
    if len(series) == 0:
        return None
    last = series[-1]
    return (float(last.timestamp), float(last.value))


def observation_from_context(ctx: Any, cfg: ItlSlaPolicyConfig) -> Observation:
    """Fleet observation from Ray's AutoscalingContext: the latest fresh value of each stat per running
    replica, aggregated by ``fleet.fleet_observation`` (the simulator's too)."""
    now = ctx.current_time if ctx.current_time is not None else time.time()
    metrics: Dict[str, Dict[Any, Any]] = {}
    try:
        metrics = ctx.raw_metrics or {}
    except Exception:  # noqa: BLE001 - lazily computed by Ray; fall back to aggregated values
        metrics = {}
    if not metrics:
        metrics = ctx.aggregated_metrics or {}

    def per_replica(name: str) -> Dict[Any, float]:
        out = {}
        for rid, series in (metrics.get(name) or {}).items():
            lv = _latest(series)
            if lv is None:
                continue
            ts, v = lv
            if not math.isnan(ts) and now - ts > STALE_AFTER_S:
                continue
            out[rid] = v
        return out

    latest = {name: per_replica(name) for name in S.ALL_STATS}
    rids = sorted({rid for vals in latest.values() for rid in vals}, key=str)
    arrays = {name: np.array([vals.get(r, np.nan) for r in rids], float) for name, vals in latest.items()}
    try:
        queued = float(ctx.total_queued_requests or 0.0)
    except Exception:  # noqa: BLE001
        queued = 0.0
    return fleet_observation(
        now, ctx.current_num_replicas, ctx.target_num_replicas, ctx.capacity_adjusted_min_replicas,
        ctx.capacity_adjusted_max_replicas, arrays, cfg.sla.itl_percentile, queued_requests=queued,
        ongoing_fallback=float(getattr(ctx, "total_running_requests", 0.0) or 0.0))


class _PolicyMetrics:
    """Prometheus gauges/counters exported from the Serve controller via ray.util.metrics
    (Ray does not export custom autoscaling stats itself). Names start ``sparse24_autoscaler_``
    (Ray's exporter prefixes ``ray_``)."""

    def __init__(self):
        from ray.util import metrics as m

        tags = ("deployment", "application")
        g = lambda name, desc: m.Gauge(f"sparse24_autoscaler_{name}", description=desc, tag_keys=tags)  # noqa: E731
        self.gauges = {
            "desired_replicas": g("desired_replicas", "replicas the ITL-SLA law asks for (before Ray's delays/bounds)"),
            "feedforward_replicas": g("feedforward_replicas", "replicas demand/capacity needs (-1 unknown)"),
            "running_replicas": g("running_replicas", "running replicas seen by the policy"),
            "target_replicas": g("target_replicas", "Ray's current target replicas"),
            "arrival_rate_rps": g("arrival_rate_rps", "requests/s received by all replicas"),
            "measured_itl_ms": g("measured_itl_ms", "measured SLA-percentile ITL, ms (-1 unknown)"),
            "expected_itl_ms": g("expected_itl_ms", "profile ITL at current load, ms (-1 unknown)"),
            "itl_target_ms": g("itl_target_ms", "SLA ITL target, ms"),
            "correction": g("correction", "measured/expected ITL correction factor"),
            "capacity_rps": g("capacity_rps", "per-replica req/s within the tightened SLA (-1 unknown)"),
            "sla_attained": g("sla_attained", "1 if measured ITL <= target, 0 if not, -1 unknown"),
            "infeasible": g("infeasible", "1 when the SLA cannot be met at max replicas"),
        }
        self.decisions = m.Counter("sparse24_autoscaler_scale_events", description="scale decisions by reason",
                                   tag_keys=tags + ("reason",))
        self.sla_seconds = m.Counter("sparse24_autoscaler_sla_seconds", description="policy-observed seconds by SLA state",
                                     tag_keys=tags + ("state",))

    def export(self, tags: Dict[str, str], obs: Observation, d: Decision, target_ms: float, dt_s: float) -> None:
        val = lambda x: -1.0 if x is None else float(x)  # noqa: E731
        attained = None if obs.itl_ms is None else (1.0 if obs.itl_ms <= target_ms else 0.0)
        for k, v in {
            "desired_replicas": d.desired, "feedforward_replicas": val(d.feedforward),
            "running_replicas": obs.running_replicas, "target_replicas": obs.target_replicas,
            "arrival_rate_rps": obs.arrival_rate_rps, "measured_itl_ms": val(obs.itl_ms),
            "expected_itl_ms": val(d.expected_itl_ms), "itl_target_ms": target_ms, "correction": d.correction,
            "capacity_rps": val(d.capacity_rps), "sla_attained": val(attained), "infeasible": float(d.infeasible),
        }.items():
            self.gauges[k].set(float(v), tags=tags)
        if dt_s > 0:
            state = "unknown" if attained is None else ("met" if attained else "missed")
            self.sla_seconds.inc(dt_s, tags={**tags, "state": state})


class ItlSlaPolicy:
    """Ray Serve class policy: ``__call__(ctx) -> (desired_replicas, policy_state)``."""

    def __init__(self, **policy_kwargs: Any):
        self.cfg = ItlSlaPolicyConfig.model_validate(policy_kwargs)
        self.profile = CapacityProfile.load(resolve_profile_path(self.cfg.profile_path)) if self.cfg.profile_path else None
        self._metrics: Optional[_PolicyMetrics] = None
        self._curves: Dict[str, Any] = {}
        self._last_log = (None, -math.inf)  # (key, time)
        self._last_call: Optional[float] = None
        logger.info("ItlSlaPolicy: %s, profile=%s", self.cfg.sla.model_dump(),
                    self.profile.deployment if self.profile else "none (pure feedback)")

    def _curve(self, obs: Observation):
        if self.profile is None:
            return None
        w = self.profile.workload(self.cfg.workload, obs.mean_prompt_tokens, obs.mean_output_tokens)
        if w.name not in self._curves:
            self._curves[w.name] = w.curve()
        return self._curves[w.name]

    def __call__(self, ctx: Any) -> Tuple[int, Dict[str, Any]]:
        obs = observation_from_context(ctx, self.cfg)
        d = decide(obs, self.cfg, self._curve(obs), ctx.policy_state)
        state = dict(ctx.policy_state or {})
        state.update(d.state)
        self._report(ctx, obs, d)
        return d.desired, state

    def _report(self, ctx: Any, obs: Observation, d: Decision) -> None:
        now = obs.now_s
        dt = 0.0 if self._last_call is None else min(5.0, max(0.0, now - self._last_call))
        self._last_call = now
        tags = {"deployment": str(ctx.deployment_name), "application": str(ctx.app_name or "")}
        # One log line / counter increment per new decision (Ray calls every ~0.1 s; with Ray's own
        # up/downscale delay a pending decision repeats until Ray applies it).
        key = (d.desired, d.reason, obs.target_replicas)
        changed = key != self._last_log[0]
        try:
            if self._metrics is None:
                self._metrics = _PolicyMetrics()
            self._metrics.export(tags, obs, d, self.cfg.sla.itl_target_ms, dt)
            if changed and d.desired != obs.target_replicas:
                self._metrics.decisions.inc(1.0, tags={**tags, "reason": d.reason})
        except Exception as e:  # noqa: BLE001 - metrics must never stop scaling
            logger.debug("ItlSlaPolicy metrics export failed: %s", e)
        if changed or (d.desired != obs.target_replicas and now - self._last_log[1] >= self.cfg.log_every_s):
            logger.info(
                "ItlSlaPolicy %s: %s %d -> %d (running %d) | rate %.2f rps, itl_p%d %s ms (n=%d) target %.1f ms, "
                "expected %s ms, ff %s, fb %s, cap %s rps, corr %.2f, queued %.1f%s",
                tags["deployment"], d.reason, obs.target_replicas, d.desired, obs.running_replicas,
                obs.arrival_rate_rps, self.cfg.sla.itl_percentile,
                "-" if obs.itl_ms is None else f"{obs.itl_ms:.1f}", obs.itl_samples, self.cfg.sla.itl_target_ms,
                "-" if d.expected_itl_ms is None else f"{d.expected_itl_ms:.1f}", d.feedforward, d.feedback,
                "-" if d.capacity_rps is None else f"{d.capacity_rps:.2f}", d.correction, obs.queued_requests,
                " (SLA infeasible: capped at max)" if d.infeasible else "")
            self._last_log = (key, now)
