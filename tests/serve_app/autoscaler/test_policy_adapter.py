"""ItlSlaPolicy's translation of Ray's AutoscalingContext (built with Ray's own classes) into an Observation."""

import pytest

pytest.importorskip("ray")
from ray.serve._private.common import TimeStampedValue  # noqa: E402
from ray.serve.config import AutoscalingConfig, AutoscalingContext  # noqa: E402

from sparse24.serve_app.autoscaler import stats as S  # noqa: E402
from sparse24.serve_app.autoscaler.policy import STALE_AFTER_S, ItlSlaPolicy  # noqa: E402

NOW = 10_000.0


def _ctx(raw, current=2, target=2, queued=0.0, state=None):
    return AutoscalingContext(
        deployment_id=None, deployment_name="llm", app_name="app", current_num_replicas=current, target_num_replicas=target,
        running_replicas=list(raw.get(S.ITL_P90_S, {})), total_num_requests=5.0, total_queued_requests=queued,
        aggregated_metrics={}, raw_metrics=raw, capacity_adjusted_min_replicas=1, capacity_adjusted_max_replicas=4,
        policy_state=state or {}, last_scale_up_time=None, last_scale_down_time=None, current_time=NOW,
        config=AutoscalingConfig(min_replicas=1, max_replicas=4))


def _raw(per_replica):
    raw = {}
    for rid, (ts, vals) in per_replica.items():
        for k, v in vals.items():
            raw.setdefault(k, {})[rid] = [TimeStampedValue(ts - 1.0, 123.0), TimeStampedValue(ts, v)]
    return raw


def test_observation_weights_itl_by_samples_and_sums_rates():
    raw = _raw({
        "r1": (NOW - 1, {S.ITL_P90_S: 0.040, S.ITL_SAMPLES: 300, S.ARRIVAL_RATE_RPS: 2.0, S.MEAN_PROMPT_TOKENS: 100,
                         S.MEAN_OUTPUT_TOKENS: 50, S.RUNNING_REQUESTS: 3, S.TTFT_P90_S: 0.2}),
        "r2": (NOW - 1, {S.ITL_P90_S: 0.080, S.ITL_SAMPLES: 100, S.ARRIVAL_RATE_RPS: 1.0, S.MEAN_PROMPT_TOKENS: 400,
                         S.MEAN_OUTPUT_TOKENS: 50, S.RUNNING_REQUESTS: 1, S.TTFT_P90_S: 0.5}),
    })
    pol = ItlSlaPolicy(sla={"itl_percentile": 90, "itl_target_ms": 50})
    from sparse24.serve_app.autoscaler.policy import observation_from_context

    o = observation_from_context(_ctx(raw, queued=2.0), pol.cfg)
    assert o.itl_ms == pytest.approx(1000 * (0.040 * 300 + 0.080 * 100) / 400)
    assert o.itl_samples == 400 and o.arrival_rate_rps == pytest.approx(3.0)
    assert o.mean_prompt_tokens == pytest.approx((100 * 2 + 400 * 1) / 3)
    assert o.ongoing_requests == 4 and o.queued_requests == 2.0 and o.ttft_ms == pytest.approx(500.0)
    assert (o.min_replicas, o.max_replicas, o.running_replicas, o.target_replicas) == (1, 4, 2, 2)


def test_stale_replica_stats_are_ignored():
    raw = _raw({"fresh": (NOW - 1, {S.ITL_P90_S: 0.01, S.ITL_SAMPLES: 50, S.ARRIVAL_RATE_RPS: 1.0}),
                "stale": (NOW - STALE_AFTER_S - 5, {S.ITL_P90_S: 9.0, S.ITL_SAMPLES: 5000, S.ARRIVAL_RATE_RPS: 9.0})})
    from sparse24.serve_app.autoscaler.policy import observation_from_context

    o = observation_from_context(_ctx(raw), ItlSlaPolicy().cfg)
    assert o.itl_ms == pytest.approx(10.0) and o.arrival_rate_rps == pytest.approx(1.0)


def test_policy_call_returns_desired_and_keeps_rays_state_keys():
    raw = _raw({"r1": (NOW - 1, {S.ITL_P90_S: 0.2, S.ITL_SAMPLES: 500, S.ARRIVAL_RATE_RPS: 2.0})})
    pol = ItlSlaPolicy(sla={"itl_target_ms": 50}, breach_stable_s=0, settle_s=0)
    state = {"__decision_counters": 3, "__decision_timestamp": 5.0}
    desired, new_state = pol(_ctx(raw, current=1, target=1, state=state))
    assert desired > 1  # 200 ms measured vs 50 ms target
    assert new_state["__decision_counters"] == 3 and "itl_sla" in new_state
