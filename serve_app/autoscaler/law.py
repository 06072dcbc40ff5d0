"""The ITL-SLA control law: (observation, SLA, capacity curve, state) -> desired replicas.

Pure and deterministic: the simulator and the Ray Serve policy call exactly this function.

Feed-forward: demand (req/s) / per-replica capacity at the SLA, where capacity comes from the
profile at a target tightened by ``headroom`` and by a measured correction factor
(EWMA of measured ITL / profile-expected ITL at the current per-replica load). Demand is predictive:
the arrival rate extrapolated ``forecast_lead_s`` ahead along its rising trend (least-squares slope
over ``trend_window_s``), because a replica asked for now serves only after its start-up; a falling
trend is ignored (scale-down waits for the rate itself).
Feedback: a measured breach lasting ``breach_stable_s`` adds replicas in proportion to the
overshoot, but only when no replica is still starting and the fleet has settled (no cascade).
Hysteresis: scale-up needs ``upscale_stable_s`` of excess demand; scale-down needs
``downscale_stable_s`` of the smaller count sufficing with an extra ``downscale_margin``.
Infeasible SLA (profile misses it even at the lightest load, or demand needs more than max):
cap at max and say so in the decision's reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .config import ControlLawConfig
from .profile import CapacityCurve

_STATE_KEY = "itl_sla"  # our sub-dict inside Ray's policy_state (Ray adds its own keys beside it)


@dataclass(frozen=True)
class Observation:
    """What the policy sees at one tick (fleet-wide; rates in req/s, latencies in ms)."""

    now_s: float
    running_replicas: int  # replicas serving now
    target_replicas: int  # Ray's current target (running + starting)
    min_replicas: int
    max_replicas: int
    arrival_rate_rps: float = 0.0  # requests/s received by all replicas
    mean_prompt_tokens: float = 0.0
    mean_output_tokens: float = 0.0
    itl_ms: Optional[float] = None  # SLA percentile of recent token gaps; None = unknown
    itl_samples: int = 0
    ttft_ms: Optional[float] = None  # recent TTFT p90
    ongoing_requests: float = 0.0  # in flight on replicas
    queued_requests: float = 0.0  # waiting at handles/router (no replica had room)


@dataclass
class LawState:
    correction: float = 1.0
    last_correction_s: Optional[float] = None
    up_since_s: Optional[float] = None
    down_since_s: Optional[float] = None
    breach_since_s: Optional[float] = None
    last_change_s: Optional[float] = None  # last time running or target replicas changed
    last_running: int = -1
    last_target: int = -1
    rate_samples: List[List[float]] = field(default_factory=list)  # [t_s, rate_rps] over trend_window_s

    @classmethod
    def from_policy_state(cls, policy_state: Optional[Dict[str, Any]]) -> "LawState":
        d = (policy_state or {}).get(_STATE_KEY) or {}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_policy_state(self) -> Dict[str, Any]:
        d = dict(vars(self))
        d["rate_samples"] = [list(x) for x in self.rate_samples]
        return {_STATE_KEY: d}


_RATE_SAMPLE_EVERY_S = 1.0  # Ray calls the policy every ~0.1 s; one trend sample a second is enough


def _forecast_rate(st: LawState, now: float, rate: float, cfg: ControlLawConfig) -> float:
    """Arrival rate ``forecast_lead_s`` ahead: current rate + rising least-squares slope x lead (req/s)."""
    if cfg.forecast_lead_s <= 0.0:
        return rate
    if not st.rate_samples or now - st.rate_samples[-1][0] >= _RATE_SAMPLE_EVERY_S:
        st.rate_samples.append([now, rate])
    st.rate_samples = [s for s in st.rate_samples if now - s[0] <= cfg.trend_window_s]
    if len(st.rate_samples) < 3:
        return rate
    ts = [s[0] for s in st.rate_samples]
    rs = [s[1] for s in st.rate_samples]
    tm, rm = sum(ts) / len(ts), sum(rs) / len(rs)
    var = sum((t - tm) ** 2 for t in ts)
    if var <= 0.0:
        return rate
    slope = sum((t - tm) * (r - rm) for t, r in zip(ts, rs)) / var
    # Only a rising trend that stands out of the window's noise: arrival noise must not buy replicas.
    resid = sum((r - rm - slope * (t - tm)) ** 2 for t, r in zip(ts, rs))
    stderr = math.sqrt(resid / max(1, len(ts) - 2) / var)
    if slope <= cfg.trend_significance * stderr:
        return rate
    return rate + slope * cfg.forecast_lead_s


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str  # hold | up_feedforward | up_feedback | down | idle_down | capped_at_max | infeasible | wait_starting
    feedforward: Optional[int] = None  # replicas the demand needs (None: no profile or no demand estimate)
    feedback: Optional[int] = None  # replicas the measured breach asks for
    capacity_rps: Optional[float] = None  # per-replica req/s at the tightened SLA
    expected_itl_ms: Optional[float] = None  # profile ITL at the current per-replica load
    correction: float = 1.0
    breach: bool = False
    infeasible: bool = False
    state: Dict[str, Any] = field(default_factory=dict)


def _since(t: Optional[float], cond: bool, now: float) -> Optional[float]:
    return (t if t is not None else now) if cond else None


def decide(obs: Observation, cfg: ControlLawConfig, curve: Optional[CapacityCurve],
           policy_state: Optional[Dict[str, Any]] = None) -> Decision:
    """One control step. ``curve`` is the profile workload to plan with (None: pure feedback)."""
    st = LawState.from_policy_state(policy_state)
    now = obs.now_s
    sla = cfg.sla
    pct = sla.itl_percentile
    cur = max(obs.target_replicas, 0)
    run = max(obs.running_replicas, 0)
    lo_b, hi_b = obs.min_replicas, max(obs.max_replicas, obs.min_replicas)

    if cur != st.last_target:  # Ray applied a new target: the hysteresis timers start over
        st.up_since_s = st.down_since_s = None
    if run != st.last_running or cur != st.last_target:
        st.last_change_s, st.last_running, st.last_target = now, run, cur
    settled = st.last_change_s is None or now - st.last_change_s >= cfg.settle_s
    measured = obs.itl_ms if (obs.itl_ms is not None and obs.itl_samples >= cfg.min_itl_samples) else None

    # --- correction factor: measured vs expected ITL at the current per-replica load --------
    expected = None
    if curve is not None and run > 0 and obs.arrival_rate_rps > 0:
        expected = curve.itl_ms_at_qps(obs.arrival_rate_rps / run, pct)
        if measured is not None and settled and expected > 0:
            lo, hi = cfg.correction_bounds
            ratio = min(max(measured / expected, lo), hi)
            dt = 0.0 if st.last_correction_s is None else max(0.0, now - st.last_correction_s)
            a = 1.0 - math.exp(-dt / cfg.correction_tau_s) if st.last_correction_s is not None else 0.0
            st.correction += a * (ratio - st.correction)
            st.last_correction_s = now
    corr = st.correction

    # --- feed-forward --------------------------------------------------------------------
    ff = ff_down = None
    cap = None
    infeasible = False
    if curve is not None:
        cap = curve.max_qps_at_itl(sla.itl_target_ms * (1.0 - cfg.headroom) / corr, pct)
        if cap <= 0.0:
            infeasible = True
            ff = ff_down = hi_b
        else:
            # Requests waiting at the router are demand the replicas' arrival counts miss.
            queued = obs.queued_requests / cfg.queue_drain_s
            ahead = _forecast_rate(st, now, obs.arrival_rate_rps, cfg)
            demand = (ahead + queued) * (1.0 + cfg.spare_capacity)
            ff = math.ceil(demand / cap - 1e-9)
            demand_now = (obs.arrival_rate_rps + queued) * (1.0 + cfg.spare_capacity)
            ff_down = max(ff, math.ceil(demand_now / (cap * (1.0 - cfg.downscale_margin)) - 1e-9))

    # --- feedback ------------------------------------------------------------------------
    ttft_breach = sla.ttft_target_ms is not None and obs.ttft_ms is not None and obs.ttft_ms > sla.ttft_target_ms
    breach = (measured is not None and measured > sla.itl_target_ms) or ttft_breach or obs.queued_requests >= 1.0
    st.breach_since_s = _since(st.breach_since_s, breach, now)
    fb = None
    if breach and now - st.breach_since_s >= cfg.breach_stable_s and run >= cur and settled:
        over = (measured / sla.itl_target_ms) if measured is not None else 1.0
        step = min(cfg.max_step_up, max(1, math.ceil(cur * (over - 1.0))))
        fb = cur + step

    # --- combine with hysteresis ------------------------------------------------------------
    up_want = max(ff or 0, fb or 0)
    st.up_since_s = _since(st.up_since_s, ff is not None and ff > cur, now)
    desired, reason = cur, "hold"
    if fb is not None and fb > cur and fb >= (ff or 0):
        desired, reason = fb, "up_feedback"
    elif ff is not None and ff > cur and now - st.up_since_s >= cfg.upscale_stable_s:
        desired, reason = up_want, "up_feedforward"
    elif run < cur and up_want <= cur:
        reason = "wait_starting"

    if desired == cur and not breach and run >= cur:
        if curve is not None:
            need = ff_down
        elif measured is not None and measured < cfg.feedback_low_watermark * sla.itl_target_ms:
            need = cur - 1
        elif obs.arrival_rate_rps == 0 and obs.ongoing_requests == 0 and obs.itl_samples == 0:
            need = lo_b  # idle: nothing arrived over the whole stats window
        else:
            need = cur
        if obs.arrival_rate_rps == 0 and obs.ongoing_requests == 0:
            need = lo_b
        need = max(need, lo_b)
        st.down_since_s = _since(st.down_since_s, need < cur, now)
        if need < cur and now - st.down_since_s >= cfg.downscale_stable_s:
            desired = need if curve is not None or need == lo_b else cur - 1
            reason = "idle_down" if obs.arrival_rate_rps == 0 else "down"
    else:
        st.down_since_s = None

    if desired > hi_b:
        desired, reason = hi_b, ("infeasible" if infeasible else "capped_at_max")
    elif infeasible:
        reason = "infeasible"
    desired = max(lo_b, desired)
    # Timers are not reset on a decision: Ray's own up/downscale delay only counts while the
    # policy keeps asking for the same direction, so the law must keep asking.
    return Decision(desired=desired, reason=reason, feedforward=ff, feedback=fb, capacity_rps=cap,
                    expected_itl_ms=expected, correction=corr, breach=breach, infeasible=infeasible,
                    state=st.to_policy_state())
