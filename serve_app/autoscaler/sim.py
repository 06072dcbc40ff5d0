"""Discrete-time replay of an arrival trace against simulated LLM replicas under an autoscaling policy.

Model (one tick = ``dt_s``):
* Router: FIFO queue at the handle; a request goes to the running, non-draining replica with
  the fewest in-flight requests (Ray's power-of-two-choices approximated by the best choice),
  if it has fewer than ``max_ongoing_requests``; otherwise it waits (queue time counts in TTFT).
* Replica (continuous batching): with n requests in flight, each request in decode emits one
  token per ``ITL_p50(n)`` (profile curve vs concurrency); a new request first spends
  ``TTFT_p50(n)`` in prefill. Tokens produced while the replica's ``ITL_pXX(n)`` (the SLA
  percentile) is <= target count as within the ITL SLA.
* Lifecycle: a new replica serves after ``startup_s``; a removed one stops taking requests and
  drains its in-flight ones (graceful shutdown). Replica-hours count starting+running+draining.
* Metrics reach the policy with Ray's lag: replica stats are pushed every ``metrics_interval_s``;
  the default policy's ongoing-requests total is a mean over ``look_back_period_s``. Our policy's
  Observation is built by ``fleet.fleet_observation`` from per-replica stats, as in Ray.
* TTFT = router queue wait (0 for a request routed in the tick it arrived) + ``TTFT_p50(n)`` prefill.
Every policy goes through ``ray_rules.wrapped_decision`` (Ray's factors, delays and bounds): ours,
Ray's default, and Ray Serve LLM's ``TTFTAutoscalingPolicy`` (``ray_llm_rules``).
Deterministic: no randomness here (the trace carries the seed).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from ..latency import percentile
from .config import ControlLawConfig, ItlSla
from . import stats as ST
from .fleet import fleet_observation
from .law import decide
from .profile import CapacityCurve
from .ray_llm_rules import TtftMetricPipeline, TtftPolicyConfig, ttft_policy_desired
from .ray_rules import RayAutoscalingConfig, default_policy_desired, wrapped_decision
from .trace import Trace


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dt_s: PositiveFloat = 1.0
    startup_s: float = Field(60.0, ge=0.0, description="replica start-up delay (s)")
    max_ongoing_requests: PositiveInt = 128
    stats_window_s: PositiveFloat = Field(10.0, description="replica stats look-back (stats.DEFAULT_WINDOW_S)")
    min_replicas: int = Field(1, ge=0)
    max_replicas: PositiveInt = 32
    initial_replicas: Optional[int] = None
    series_every_s: PositiveFloat = 10.0
    control_interval_s: PositiveFloat = Field(0.1, description="Ray's RAY_SERVE_CONTROL_LOOP_INTERVAL_S default")


class PolicySpec(BaseModel):
    """A policy under test: ours (``itl_sla``), Ray's default, or Ray Serve LLM's TTFT policy
    (``ray_llm_ttft``), plus Ray's wrapper settings."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["itl_sla", "ray_default", "ray_llm_ttft"]
    label: str = ""
    target_ongoing_requests: PositiveFloat = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    look_back_period_s: PositiveFloat = 30.0
    metrics_interval_s: PositiveFloat = 10.0
    use_profile: bool = True
    law: ControlLawConfig = Field(default_factory=ControlLawConfig)
    ttft: TtftPolicyConfig = Field(default_factory=TtftPolicyConfig)

    def ray_config(self, fleet: FleetConfig) -> RayAutoscalingConfig:
        return RayAutoscalingConfig(
            min_replicas=fleet.min_replicas, max_replicas=fleet.max_replicas, initial_replicas=fleet.initial_replicas,
            target_ongoing_requests=self.target_ongoing_requests, upscale_delay_s=self.upscale_delay_s,
            downscale_delay_s=self.downscale_delay_s, look_back_period_s=self.look_back_period_s,
            metrics_interval_s=self.metrics_interval_s)

    def name(self) -> str:
        if self.label:
            return self.label
        delays = f"up={self.upscale_delay_s:g},down={self.downscale_delay_s:g},look_back={self.look_back_period_s:g}"
        if self.kind == "ray_default":
            return f"ray_default(target_ongoing={self.target_ongoing_requests:g},{delays})"
        if self.kind == "ray_llm_ttft":
            return f"ray_llm_ttft(ttft_target={self.ttft.ttft_target_s:g}s,idle={self.ttft.idle_threshold:g},{delays})"
        return "itl_sla"


@dataclass
class SimResult:
    policy: str
    spec: Dict
    tokens_total: float
    tokens_in_sla: float
    requests_total: int
    requests_in_sla: int
    requests_unfinished: int
    replica_hours: float
    scale_ups: int
    scale_downs: int
    time_above_sla_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    max_replicas_seen: int
    series: Dict[str, List[float]] = field(default_factory=dict)

    @property
    def token_attainment(self) -> float:
        return self.tokens_in_sla / self.tokens_total if self.tokens_total else 1.0

    @property
    def request_attainment(self) -> float:
        return self.requests_in_sla / self.requests_total if self.requests_total else 1.0

    def summary(self) -> Dict:
        return {
            "policy": self.policy, "token_attainment": round(self.token_attainment, 5),
            "request_attainment": round(self.request_attainment, 5), "replica_hours": round(self.replica_hours, 3),
            "scale_ups": self.scale_ups, "scale_downs": self.scale_downs, "time_above_sla_s": self.time_above_sla_s,
            "ttft_p50_ms": round(self.ttft_p50_ms, 1), "ttft_p99_ms": round(self.ttft_p99_ms, 1),
            "requests": self.requests_total, "requests_unfinished": self.requests_unfinished,
            "max_replicas_seen": self.max_replicas_seen,
        }


_STARTING, _RUNNING, _DRAINING = 0, 1, 2


def _replica_stats(ring_arr: np.ndarray, ring_tok: np.ndarray, ring_itl: np.ndarray, running: np.ndarray,
                   in_flight: np.ndarray, window_s: float, pct: int, trace: Trace) -> Dict[str, np.ndarray]:
    """What each running replica's ``record_autoscaling_stats`` reports over the stats window
    (stats.py names and units: s, req/s, tokens); ``fleet.fleet_observation`` aggregates them."""
    tok = ring_tok.sum(axis=0)[running]
    itl_ms_tok = ring_itl.sum(axis=0)[running]
    n = int(running.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        itl_s = np.where(tok > 0, itl_ms_tok / tok / 1000.0, np.nan)
    return {
        ST.ARRIVAL_RATE_RPS: ring_arr.sum(axis=0)[running] / window_s,
        ST.ITL_SAMPLES: tok, ST.ITL_PERCENTILE_KEYS[pct]: itl_s,
        ST.MEAN_PROMPT_TOKENS: np.full(n, float(trace.prompt_tokens[0]) if len(trace) else np.nan),
        ST.MEAN_OUTPUT_TOKENS: np.full(n, float(trace.output_tokens[0]) if len(trace) else np.nan),
        ST.RUNNING_REQUESTS: in_flight[running].astype(float),
    }


def simulate(trace: Trace, curve: CapacityCurve, sla: ItlSla, fleet: FleetConfig, policy: PolicySpec) -> SimResult:
    """Replay ``trace`` under ``policy``; ``curve`` is the replicas' true behaviour (and, for the
    ITL-SLA policy with ``use_profile``, also its model)."""
    dt = fleet.dt_s
    pct = sla.itl_percentile
    target_ms = sla.itl_target_ms
    rcfg = policy.ray_config(fleet)
    model_curve = curve if (policy.kind == "itl_sla" and policy.use_profile) else None

    # Replica behaviour tables, indexed by in-flight count 0..max_ongoing.
    nmax = fleet.max_ongoing_requests
    conc = np.arange(nmax + 2, dtype=float)
    itl_mean_s = curve.itl_ms_at_concurrency(np.maximum(conc, 1.0), 50) / 1000.0
    itl_sla_ms = curve.itl_ms_at_concurrency(np.maximum(conc, 1.0), pct)
    ttft_s = curve.ttft_ms_at_concurrency(np.maximum(conc, 1.0)) / 1000.0
    ok_table = itl_sla_ms <= target_ms

    S = fleet.max_replicas * 2 + 4  # replica slots (a draining replica keeps its slot)
    slot_state = np.full(S, -1, dtype=int)  # -1 free
    slot_ready = np.zeros(S)
    W = max(1, int(round(fleet.stats_window_s / dt)))
    ring_arr = np.zeros((W, S))
    ring_tok = np.zeros((W, S))
    ring_itl = np.zeros((W, S))  # tokens * ITL_pXX(ms)
    L = max(1, int(round(rcfg.look_back_period_s / dt)))
    ongoing_hist = np.zeros(L)
    ttft_pipe = TtftMetricPipeline(policy.ttft) if policy.kind == "ray_llm_ttft" else None

    def add_replicas(k: int, now: float, ready_now: bool = False):
        for _ in range(k):
            s = int(np.flatnonzero(slot_state == -1)[0])
            slot_state[s] = _RUNNING if ready_now else _STARTING
            slot_ready[s] = now + (0.0 if ready_now else fleet.startup_s)
            ring_arr[:, s] = ring_tok[:, s] = ring_itl[:, s] = 0.0

    init = fleet.initial_replicas if fleet.initial_replicas is not None else fleet.min_replicas
    add_replicas(max(init, fleet.min_replicas), 0.0, ready_now=True)
    target = int(np.sum(slot_state >= 0))

    # Active request arrays.
    a_slot = np.zeros(0, int); a_req = np.zeros(0, int); a_pre = np.zeros(0); a_tok = np.zeros(0)
    a_out = np.zeros(0); a_gap_ok = np.zeros(0); a_gaps = np.zeros(0); a_ttft = np.zeros(0)
    queue: deque = deque()
    arrivals, n_req = trace.arrival_s, len(trace)
    ptr = 0

    tokens_total = tokens_ok = 0.0
    req_total = req_ok = 0
    ttfts: List[np.ndarray] = []
    replica_seconds = 0.0
    ups = downs = 0
    above_s = 0.0
    max_seen = target
    policy_state: Dict = {}
    ray_state: Dict = {}
    pushed_stats: Dict[str, np.ndarray] = {}  # per running replica, as last pushed (stats.py names)
    pushed_total = 0.0
    next_push = 0.0
    ser: Dict[str, List[float]] = {k: [] for k in ("t_s", "replicas", "running", "target", "rate_rps", "itl_ms", "out_of_sla_frac", "queued")}
    next_ser, ser_arr, ser_tok, ser_bad, ser_itlw = 0.0, 0, 0.0, 0.0, 0.0
    n_ticks = int(math.ceil(trace.duration_s / dt))

    def counts_now() -> np.ndarray:
        return np.bincount(a_slot, minlength=S) if len(a_slot) else np.zeros(S, int)

    for tick in range(n_ticks):
        t = tick * dt
        # 1. lifecycle
        slot_state[(slot_state == _STARTING) & (slot_ready <= t)] = _RUNNING
        counts = np.bincount(a_slot, minlength=S) if len(a_slot) else np.zeros(S, int)
        slot_state[(slot_state == _DRAINING) & (counts == 0)] = -1
        # 2. arrivals up to t join the router queue
        end = int(np.searchsorted(arrivals, t, side="right"))
        new_arr = end - ptr
        queue.extend(range(ptr, end))
        ptr = end
        # 3. routing
        row = tick % W
        ring_arr[row] = 0.0; ring_tok[row] = 0.0; ring_itl[row] = 0.0
        serving = np.flatnonzero(slot_state == _RUNNING)
        new_slots: List[int] = []
        new_reqs: List[int] = []
        if queue and len(serving):
            heap = [(int(counts[s_]), int(s_)) for s_ in serving]
            heapq.heapify(heap)
            while queue and heap[0][0] < nmax:
                c_, s_ = heap[0]
                heapq.heapreplace(heap, (c_ + 1, s_))
                new_slots.append(s_)
                new_reqs.append(queue.popleft())
            for c_, s_ in heap:
                counts[s_] = c_
        if new_reqs:
            ns = np.array(new_slots, int); nr = np.array(new_reqs, int)
            a_slot = np.concatenate([a_slot, ns]); a_req = np.concatenate([a_req, nr])
            # A request that found room is routed on arrival; the tick grid must not add its own wait.
            wait = np.where(arrivals[nr] > t - dt, 0.0, t - arrivals[nr])
            prefill = ttft_s[counts[ns]]
            a_pre = np.concatenate([a_pre, prefill + 1e-9])
            a_ttft = np.concatenate([a_ttft, wait + prefill])
            a_tok = np.concatenate([a_tok, np.zeros(len(nr))])
            a_out = np.concatenate([a_out, trace.output_tokens[nr].astype(float)])
            a_gap_ok = np.concatenate([a_gap_ok, np.zeros(len(nr))]); a_gaps = np.concatenate([a_gaps, np.zeros(len(nr))])
            np.add.at(ring_arr[row], ns, 1.0)
        # 4. service for one tick
        if len(a_slot):
            n_here = np.minimum(counts, nmax + 1)
            pre = a_pre > 0
            first = pre & (a_pre <= dt)
            if ttft_pipe is not None:
                ttft_pipe.observe(t, a_ttft[first])
            dec_time = np.where(pre, np.maximum(0.0, dt - a_pre), dt)
            a_pre = np.maximum(0.0, a_pre - dt)
            a_tok[first] += 1.0
            started = a_tok >= 1.0
            gaps = np.where(started, dec_time / itl_mean_s[n_here[a_slot]], 0.0)
            gaps = np.minimum(gaps, np.maximum(0.0, a_out - a_tok))
            a_tok += gaps
            ok = ok_table[n_here[a_slot]]
            a_gaps += gaps
            a_gap_ok += gaps * ok
            tok_slot = np.bincount(a_slot, weights=gaps, minlength=S)
            ring_tok[row] = tok_slot
            ring_itl[row] = tok_slot * itl_sla_ms[n_here]
            tick_tok = float(tok_slot.sum())
            tick_bad = float(tok_slot[~ok_table[n_here]].sum())
            tokens_total += tick_tok
            tokens_ok += tick_tok - tick_bad
            if tick_bad > 0:
                above_s += dt
            ser_tok += tick_tok; ser_bad += tick_bad; ser_itlw += float(ring_itl[row].sum())
            done = a_tok >= a_out - 1e-9
            if done.any():
                nd = int(done.sum())
                req_total += nd
                ok_req = a_gap_ok[done] >= a_gaps[done] - 1e-6
                if sla.ttft_target_ms is not None:
                    ok_req &= a_ttft[done] * 1000.0 <= sla.ttft_target_ms
                req_ok += int(ok_req.sum())
                ttfts.append(a_ttft[done].copy())
                keep = ~done
                a_slot, a_req, a_pre, a_tok, a_out = a_slot[keep], a_req[keep], a_pre[keep], a_tok[keep], a_out[keep]
                a_gap_ok, a_gaps, a_ttft = a_gap_ok[keep], a_gaps[keep], a_ttft[keep]
        # 5. metrics as Ray would see them
        running_mask = slot_state == _RUNNING
        n_running = int(running_mask.sum())
        ongoing_hist[tick % L] = float(len(a_slot)) + len(queue)
        if t + 1e-9 >= next_push:
            next_push = t + policy.metrics_interval_s
            pushed_total = float(ongoing_hist[: min(L, tick + 1)].mean())
            if policy.kind == "itl_sla":
                pushed_stats = _replica_stats(ring_arr, ring_tok, ring_itl, running_mask, counts_now(),
                                              min(W, tick + 1) * dt, pct, trace)
        # 6. policy (Ray calls it every 0.1 s; once per tick is equivalent for level-based policies and time-based delays)
        n_active = int(np.sum((slot_state == _STARTING) | running_mask))
        if policy.kind == "itl_sla":
            def raw() -> float:
                nonlocal policy_state
                obs = fleet_observation(t, n_running, target, fleet.min_replicas, fleet.max_replicas, pushed_stats,
                                        pct, queued_requests=float(len(queue)))
                d = decide(obs, policy.law, model_curve, policy_state)
                policy_state = d.state
                return float(d.desired)
        elif policy.kind == "ray_llm_ttft":
            if ttft_pipe is not None and not len(a_slot):
                ttft_pipe.observe(t, np.zeros(0))  # scrapes and fetches go on while idle

            def raw() -> float:
                return ttft_policy_desired(ttft_pipe.read(t), target, n_running, pushed_total, policy.ttft)[0]
        else:
            def raw() -> float:
                return default_policy_desired(pushed_total, n_running, target, rcfg)
        # Ray's controller runs every CONTROL_LOOP_INTERVAL_S; a policy that steps from the current target
        # (the TTFT policy) can move once per controller tick, so it gets every tick inside this one.
        n_ctl = int(round(dt / fleet.control_interval_s)) if policy.kind == "ray_llm_ttft" else 1
        for k in range(max(1, n_ctl)):
            new_target, ray_state = wrapped_decision(raw, n_running, target, pushed_total, rcfg, ray_state,
                                                     t + k * fleet.control_interval_s)
            if new_target != target:
                ups += new_target > target
                downs += new_target < target
                target = new_target
        if target > n_active:
            add_replicas(target - n_active, t)
        elif target < n_active:
            k = n_active - target
            for s in sorted(np.flatnonzero(slot_state == _STARTING), key=lambda s: -slot_ready[s])[:k]:
                slot_state[s] = -1
                k -= 1
            if k > 0:
                run_slots = np.flatnonzero(slot_state == _RUNNING)
                cnt = np.bincount(a_slot, minlength=S)[run_slots] if len(a_slot) else np.zeros(len(run_slots))
                for s in run_slots[np.argsort(cnt, kind="stable")][:k]:
                    slot_state[s] = _DRAINING
        n_alive = int(np.sum(slot_state >= 0))
        max_seen = max(max_seen, n_alive)
        replica_seconds += n_alive * dt
        # 7. series
        ser_arr += new_arr
        if t + 1e-9 >= next_ser:
            span = fleet.series_every_s
            ser["t_s"].append(t); ser["replicas"].append(n_alive); ser["running"].append(n_running)
            ser["target"].append(target); ser["rate_rps"].append(ser_arr / span)
            ser["itl_ms"].append(ser_itlw / ser_tok if ser_tok > 0 else float("nan"))
            ser["out_of_sla_frac"].append(ser_bad / ser_tok if ser_tok > 0 else 0.0)
            ser["queued"].append(len(queue))
            next_ser, ser_arr, ser_tok, ser_bad, ser_itlw = t + span, 0, 0.0, 0.0, 0.0

    tt = np.concatenate(ttfts) * 1000.0 if ttfts else np.zeros(1)
    return SimResult(
        policy=policy.name(), spec=policy.model_dump(mode="json"), tokens_total=tokens_total, tokens_in_sla=tokens_ok,
        requests_total=req_total, requests_in_sla=req_ok, requests_unfinished=len(a_slot) + len(queue) + (n_req - ptr),
        replica_hours=replica_seconds / 3600.0, scale_ups=int(ups), scale_downs=int(downs), time_above_sla_s=above_s,
        ttft_p50_ms=percentile(tt, 50), ttft_p99_ms=percentile(tt, 99), max_replicas_seen=max_seen,
        series=ser)
