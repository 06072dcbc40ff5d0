"""The one TTFT/ITL/TPOT/percentile definition (sparse24.serve_app.latency) on hand-made timestamp lists."""
import math

import numpy as np
import pytest

from sparse24.serve_app import latency as L


def test_hand_made_stream_gives_ttft_itl_e2e_tpot():
    chunks = [1.1, 1.15, 1.25, 1.3]
    assert L.ttft_s(1.0, chunks) == pytest.approx(0.1)
    assert L.itl_gaps_s(chunks) == pytest.approx([0.05, 0.1, 0.05])
    assert L.e2e_s(1.0, chunks) == pytest.approx(0.3)
    assert L.tpot_s(1.0, chunks, output_tokens=4) == pytest.approx(0.2 / 3)


def test_a_chunk_with_several_tokens_is_one_gap_but_tpot_counts_tokens():
    chunks = [0.1, 0.3, 0.5]  # 3 chunks carrying 9 tokens
    assert L.itl_gaps_s(chunks) == pytest.approx([0.2, 0.2])
    assert L.tpot_s(0.0, chunks, output_tokens=9) == pytest.approx(0.4 / 8)


def test_one_token_has_ttft_but_no_gaps_and_no_tpot():
    assert L.ttft_s(0.0, [0.25]) == pytest.approx(0.25)
    assert L.itl_gaps_s([0.25]) == []
    assert L.tpot_s(0.0, [0.25], output_tokens=1) is None
    assert L.e2e_s(0.0, [0.25]) == pytest.approx(0.25)


def test_no_chunks_or_never_sent_gives_no_timings():
    assert L.ttft_s(0.0, []) is None and L.e2e_s(0.0, []) is None and L.itl_gaps_s([]) == []
    assert L.tpot_s(0.0, [], output_tokens=5) is None
    assert L.ttft_s(None, [1.0]) is None


def test_percentile_is_numpy_linear_and_nan_when_empty():
    vals = [0.001 * k for k in range(1, 101)]
    assert L.percentile(vals, 90) == pytest.approx(np.percentile(vals, 90)) == pytest.approx(0.0901)
    assert math.isnan(L.percentile([], 50))


def test_weighted_percentile_equals_repeating_each_value_weight_times():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        v, w = rng.random(n), rng.integers(0, 6, n)
        if w.sum() == 0:
            w[0] = 1
        for q in (0, 37, 50, 90, 99, 100):
            assert L.weighted_percentile(v, w, q) == pytest.approx(np.percentile(np.repeat(v, w), q))


def test_weighted_percentile_is_batched_over_rows_and_nan_for_empty_rows():
    v = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    w = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    out = L.weighted_percentile(v, w, 50)
    assert out[0] == pytest.approx(2.0) and math.isnan(out[1])


def test_summary_of_nothing_is_zeros_like_vllm():
    s = L.summary_ms([], "itl")
    assert s == {"itl_mean_ms": 0.0, "itl_p50_ms": 0.0, "itl_p90_ms": 0.0, "itl_p99_ms": 0.0}
