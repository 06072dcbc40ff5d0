"""The simulator's copy of Ray's autoscaling rules behaves exactly like Ray 2.60's own functions."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse24.serve_app.autoscaler import ray_rules as R

serve_policy = pytest.importorskip("ray.serve.autoscaling_policy")
from ray.serve._private import constants as C  # noqa: E402
from ray.serve.config import AutoscalingConfig, AutoscalingContext  # noqa: E402


def test_state_keys_match_rays():
    assert R.DECISION_COUNTERS_KEY == C.SERVE_AUTOSCALING_DECISION_COUNTERS_KEY
    assert R.DECISION_TIMESTAMP_KEY == C.SERVE_AUTOSCALING_DECISION_TIMESTAMP_KEY


def test_defaults_match_rays_autoscaling_config():
    ray_cfg, ours = AutoscalingConfig(), R.RayAutoscalingConfig()
    for f in ("min_replicas", "max_replicas", "target_ongoing_requests", "upscale_delay_s", "downscale_delay_s",
              "look_back_period_s", "metrics_interval_s"):
        assert getattr(ray_cfg, f) == getattr(ours, f), f


def _ctx(cfg, current, target, total, state, now):
    return AutoscalingContext(
        deployment_id=None, deployment_name="d", app_name="a", current_num_replicas=current, target_num_replicas=target,
        running_replicas=[], total_num_requests=total, total_queued_requests=0.0, aggregated_metrics={}, raw_metrics={},
        capacity_adjusted_min_replicas=cfg.min_replicas, capacity_adjusted_max_replicas=cfg.max_replicas,
        policy_state=dict(state), last_scale_up_time=None, last_scale_down_time=None, current_time=now, config=cfg)


steps = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.floats(0, 200), st.floats(0, 40)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(steps=steps, target_ongoing=st.floats(0.5, 64), up=st.sampled_from([0.0, 3.0, 30.0]), down=st.sampled_from([0.0, 10.0, 600.0]),
       upf=st.sampled_from([None, 0.5, 2.0]), downf=st.sampled_from([None, 0.5]), lo=st.integers(0, 2), hi=st.integers(2, 10))
def test_wrapped_default_policy_matches_ray(steps, target_ongoing, up, down, upf, downf, lo, hi):
    kw = dict(min_replicas=lo, max_replicas=hi, target_ongoing_requests=target_ongoing, upscale_delay_s=up,
              downscale_delay_s=down, upscaling_factor=upf, downscaling_factor=downf)
    ray_cfg, our_cfg = AutoscalingConfig(**kw), R.RayAutoscalingConfig(**kw)
    ray_policy = serve_policy._apply_autoscaling_config(serve_policy.replica_queue_length_autoscaling_policy)
    ray_state, our_state, now = {}, {}, 1000.0
    for current, target, total, dt in steps:
        now += dt
        ctx = _ctx(ray_cfg, current, target, total, ray_state, now)
        import time as _t
        real_time = _t.time
        _t.time = lambda: now  # Ray's delay logic reads time.time()
        try:
            ray_n, ray_state = ray_policy(ctx)
        finally:
            _t.time = real_time
        ray_n = max(lo, min(hi, int(-(-ray_n // 1))))  # ceil + apply_bounds, as the controller does
        our_n, our_state = R.wrapped_decision(
            lambda: R.default_policy_desired(total, current, target, our_cfg), current, target, total, our_cfg, our_state, now)
        assert our_n == ray_n
        assert {k: our_state.get(k) for k in (R.DECISION_COUNTERS_KEY, R.DECISION_TIMESTAMP_KEY)} == \
               {k: ray_state.get(k) for k in (R.DECISION_COUNTERS_KEY, R.DECISION_TIMESTAMP_KEY)}
