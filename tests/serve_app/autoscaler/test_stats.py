"""Replica stats window: the numbers replicas report through record_autoscaling_stats."""

import pytest

from sparse24.serve_app.autoscaler import stats as S


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_percentiles_rate_and_lengths_over_the_window():
    clk = Clock()
    w = S.ReplicaStatsWindow(window_s=10.0, clock=clk)
    clk.t += 10.0
    for i in range(4):
        w.request_started(prompt_tokens=100 * (i + 1), output_tokens=50)
    w.token_gaps([0.001 * k for k in range(1, 101)])  # 1..100 ms
    w.first_token(0.2)
    snap = w.snapshot()
    assert set(snap) == set(S.ALL_STATS)
    # numpy linear percentiles of 1..100 ms, as `vllm bench serve` computes them (sparse24.serve_app.latency)
    assert snap[S.ITL_P50_S] == pytest.approx(0.0505)
    assert snap[S.ITL_P90_S] == pytest.approx(0.0901)
    assert snap[S.ITL_P99_S] == pytest.approx(0.09901)
    assert snap[S.ITL_SAMPLES] == 100
    assert snap[S.ARRIVAL_RATE_RPS] == pytest.approx(0.4)
    assert snap[S.MEAN_PROMPT_TOKENS] == pytest.approx(250.0)
    assert snap[S.RUNNING_REQUESTS] == 4
    assert snap[S.TTFT_P90_S] == pytest.approx(0.2)


def test_old_samples_leave_the_window_and_empty_window_reports_zeros():
    clk = Clock()
    w = S.ReplicaStatsWindow(window_s=5.0, clock=clk)
    w.request_started(10, 10)
    w.token_gaps([0.5])
    w.request_finished()
    clk.t += 6.0
    snap = w.snapshot()
    assert snap[S.ITL_SAMPLES] == 0 and snap[S.ITL_P90_S] == 0.0 and snap[S.ARRIVAL_RATE_RPS] == 0.0
    assert snap[S.RUNNING_REQUESTS] == 0
    assert all(isinstance(v, float) for v in snap.values())


def test_rate_uses_replica_age_when_younger_than_window():
    clk = Clock()
    w = S.ReplicaStatsWindow(window_s=10.0, clock=clk)
    clk.t += 2.0
    w.request_started(1, 1)
    w.request_started(1, 1)
    assert w.snapshot()[S.ARRIVAL_RATE_RPS] == pytest.approx(1.0)


def test_bad_window_is_rejected_with_the_value():
    with pytest.raises(ValueError, match="-1"):
        S.ReplicaStatsWindow(window_s=-1)
