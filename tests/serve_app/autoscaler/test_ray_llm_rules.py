"""The simulator's copy of Ray Serve LLM's TTFTAutoscalingPolicy: Prometheus quantile math, decision rule,
metric lag, and (where an installed Ray ships the class) equivalence with the real policy."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse24.serve_app.autoscaler import ray_llm_rules as L


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus():
    # 10 observations in (1, 2]: the median sits half-way through that bucket
    assert math.isclose(L.histogram_quantile(0.5, [1.0, 2.0, 4.0], [0, 10, 0, 0]), 1.5)
    # first bucket's lower edge is 0
    assert math.isclose(L.histogram_quantile(0.5, [1.0, 2.0], [4, 0, 0]), 0.5)


def test_histogram_quantile_in_the_inf_bucket_is_the_last_finite_bound_and_empty_is_no_data():
    assert L.histogram_quantile(0.99, [1.0, 2.0], [1, 0, 99]) == 2.0
    assert L.histogram_quantile(0.99, [1.0, 2.0], [0, 0, 0]) is None


CFG = L.TtftPolicyConfig(ttft_target_s=0.5, idle_threshold=4.0)


def test_ttft_above_target_asks_one_more_than_the_current_target():
    assert L.ttft_policy_desired(0.6, target=5, running=3, total_num_requests=100, cfg=CFG)[0] == 6


def test_low_ttft_scales_down_only_when_replicas_are_idle():
    assert L.ttft_policy_desired(0.1, target=5, running=5, total_num_requests=10, cfg=CFG)[0] == 4
    assert L.ttft_policy_desired(0.1, target=5, running=5, total_num_requests=50, cfg=CFG)[0] == 5
    assert L.ttft_policy_desired(0.1, target=0, running=0, total_num_requests=0, cfg=CFG)[0] == 0


def test_no_prometheus_value_holds_the_target():
    assert L.ttft_policy_desired(None, target=3, running=1, total_num_requests=0, cfg=CFG)[0] == 3


def test_pipeline_sees_ttfts_after_a_scrape_and_forgets_them_after_the_rate_window():
    cfg = L.TtftPolicyConfig(scrape_interval_s=10, fetch_interval_s=5, rate_window_s=60, cache_ttl_s=15)
    pipe = L.TtftMetricPipeline(cfg)
    seen = {}
    for t in range(0, 200):
        pipe.observe(float(t), np.full(5, 3.0) if t == 3 else np.zeros(0))
        seen[t] = pipe.read(float(t))
    assert seen[2] is None  # nothing observed yet
    assert seen[5] is None  # observed at t=3, but the last scrape was at t=0
    assert seen[10] is not None and 2.5 <= seen[10] <= 5.0  # scraped at 10, fetched at 10
    assert seen[150] is None  # out of the 1 m window: empty range, no data


def test_vllm_ttft_buckets_match_vllms_own():
    buckets = pytest.importorskip("vllm.v1.metrics.buckets")
    assert tuple(buckets.TIME_TO_FIRST_TOKEN_BUCKETS) == L.VLLM_TTFT_BUCKETS_S


@settings(max_examples=200, deadline=None)
@given(p99=st.one_of(st.none(), st.floats(0.0, 10.0)), target=st.integers(0, 20), running=st.integers(0, 20),
       total=st.floats(0.0, 500.0), ttft_target=st.floats(0.05, 5.0), idle=st.floats(0.0, 64.0))
def test_decision_matches_rays_ttft_policy(p99, target, running, total, ttft_target, idle):
    ray_llm = pytest.importorskip("ray.serve.llm.autoscaling", reason="TTFTAutoscalingPolicy is not in this Ray release")
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    class _Fed(ray_llm.TTFTAutoscalingPolicy):
        prometheus_metrics = None  # the instance attribute set below replaces the mixin's cache read

    pol = _Fed(ttft_target_s=ttft_target, idle_threshold=idle, model_id="m")
    pol.prometheus_metrics = None if p99 is None else {pol.query: p99}
    cfg = AutoscalingConfig(min_replicas=0, max_replicas=20)
    ctx = AutoscalingContext(
        deployment_id=None, deployment_name="d", app_name="a", current_num_replicas=running, target_num_replicas=target,
        running_replicas=[], total_num_requests=total, total_queued_requests=0.0, aggregated_metrics={}, raw_metrics={},
        capacity_adjusted_min_replicas=0, capacity_adjusted_max_replicas=20, policy_state={}, last_scale_up_time=None,
        last_scale_down_time=None, current_time=0.0, config=cfg)
    ray_n, _ = pol(ctx)
    ours, _ = L.ttft_policy_desired(p99, target, running, total, L.TtftPolicyConfig(ttft_target_s=ttft_target, idle_threshold=idle))
    assert ours == ray_n
