"""Arrival process statistics: rate and dispersion of the open-loop schedules (like `vllm bench serve`)."""
import math

import numpy as np
import pytest

from sparse24.loadtest.arrivals import arrival_times, dispersion


@pytest.mark.parametrize("burstiness, expected_cv", [(1.0, 1.0), (0.25, 2.0), (4.0, 0.5)])
def test_gamma_arrivals_have_the_target_rate_and_dispersion(burstiness, expected_cv):
    rate, duration = 20.0, 2000.0  # ~40k arrivals
    t = arrival_times(rate, duration, burstiness, seed=7)
    got_rate, got_cv = dispersion(t)
    # the mean gap's relative standard error is cv / sqrt(n): allow 4 of them; the CV itself within 5 %
    assert got_rate == pytest.approx(rate, rel=4 * expected_cv / math.sqrt(len(t)))
    assert got_cv == pytest.approx(expected_cv, rel=0.05)
    assert np.all(np.diff(t) >= 0) and t[-1] < duration and t[0] >= 0  # bursty gaps can round to 0


def test_poisson_counts_per_second_have_variance_equal_to_mean():
    t = arrival_times(5.0, 4000.0, 1.0, seed=3)
    counts = np.bincount(t.astype(int), minlength=4000)
    assert counts.mean() == pytest.approx(5.0, rel=0.03)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.08)  # index of dispersion


def test_infinite_burstiness_is_a_fixed_interval():
    t = arrival_times(4.0, 10.0, math.inf)
    np.testing.assert_allclose(np.diff(t), 0.25)
    assert len(t) == 39  # 0.25 .. 9.75


def test_same_seed_same_schedule_different_seed_differs():
    a, b, c = arrival_times(3, 50, seed=1), arrival_times(3, 50, seed=1), arrival_times(3, 50, seed=2)
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.allclose(a, c)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rate_qps=0, duration_s=1), "rate_qps"), (dict(rate_qps=math.inf, duration_s=1), "rate_qps"),
    (dict(rate_qps=1, duration_s=0), "duration_s"), (dict(rate_qps=1, duration_s=1, burstiness=0), "burstiness"),
])
def test_bad_arrival_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        arrival_times(**kwargs)
