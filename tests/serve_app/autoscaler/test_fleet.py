"""One fleet observation for the Ray policy and the simulator: aggregation rules, and both adapters use it."""

import numpy as np
import pytest

from sparse24.serve_app.autoscaler import stats as S
from sparse24.serve_app.autoscaler.fleet import fleet_observation

NAN = float("nan")


def _obs(per_replica, **kw):
    args = dict(now_s=1.0, running_replicas=2, target_replicas=3, min_replicas=1, max_replicas=8)
    args.update(kw)
    return fleet_observation(per_replica=per_replica, itl_percentile=90, **args)


def test_rates_add_itl_is_sample_weighted_ttft_is_the_worst_lengths_are_arrival_weighted():
    o = _obs({S.ARRIVAL_RATE_RPS: np.array([2.0, 1.0]), S.ITL_SAMPLES: np.array([300.0, 100.0]),
              S.ITL_P90_S: np.array([0.040, 0.080]), S.TTFT_P90_S: np.array([0.2, 0.5]),
              S.MEAN_PROMPT_TOKENS: np.array([100.0, 400.0]), S.RUNNING_REQUESTS: np.array([3.0, 1.0])},
             queued_requests=2.0)
    assert o.arrival_rate_rps == pytest.approx(3.0) and o.itl_samples == 400
    assert o.itl_ms == pytest.approx(1000 * (0.040 * 300 + 0.080 * 100) / 400)
    assert o.ttft_ms == pytest.approx(500.0) and o.mean_prompt_tokens == pytest.approx(200.0)
    assert o.ongoing_requests == 4.0 and o.queued_requests == 2.0 and o.target_replicas == 3


def test_unreported_stats_are_nan_and_no_stats_at_all_means_unknown_itl_and_the_fallback_ongoing():
    o = _obs({S.ARRIVAL_RATE_RPS: np.array([1.0, NAN]), S.ITL_SAMPLES: np.array([NAN, 10.0]),
              S.ITL_P90_S: np.array([0.5, NAN])})
    assert o.arrival_rate_rps == 1.0 and o.itl_samples == 10 and o.itl_ms == 0.0  # samples without a percentile
    empty = _obs({}, ongoing_fallback=7.0)
    assert empty.itl_ms is None and empty.ttft_ms is None and empty.arrival_rate_rps == 0.0
    assert empty.ongoing_requests == 7.0


def test_simulator_and_ray_policy_both_build_their_observation_here():
    from sparse24.serve_app.autoscaler import policy, sim

    assert policy.fleet_observation is fleet_observation
    assert sim.fleet_observation is fleet_observation
