"""The client check: its arithmetic on hand-made records, and one bounded run against the timing server."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sparse24.loadtest.client_check import chunk_lags, truth_stats, vllm_chunk_lags
from sparse24.loadtest.metrics import RequestSample

RECORDS = {"a": {"received_s": 100.0, "chunk_s": [100.020, 100.025, 100.030]},
           "b": {"received_s": 101.0, "chunk_s": [101.020, 101.025, 101.030]}}


def test_truth_stats_follow_vllm_definitions():
    t = truth_stats(RECORDS)
    assert t["ttft"]["p50_ms"] == pytest.approx(20.0)
    assert t["itl"]["p50_ms"] == pytest.approx(5.0) and t["itl"]["n"] == 4
    assert t["tpot"]["p50_ms"] == pytest.approx(5.0)


def test_chunk_lags_match_requests_by_prompt():
    # request 0 ("a") was sent 1 ms before the server got it and each chunk arrives 1 ms after it was written
    s = RequestSample(request_id=0, scheduled_s=0.0, sent_s=0.0, chunk_times_s=[0.022, 0.027, 0.032], status=200)
    lag = chunk_lags([s], ["a"], RECORDS)
    assert lag["p50_ms"] == pytest.approx(2.0) and lag["n"] == 3


def test_vllm_lags_match_by_send_time_and_skip_broken_requests():
    res = {"start_times": [99.999, 100.999], "ttfts": [0.022, 0.021], "itls": [[0.005, 0.005], [0.005]]}
    lag = vllm_chunk_lags(res, RECORDS)  # the second request has one gap too few: not matched chunk by chunk
    assert lag["n"] == 3 and lag["p50_ms"] == pytest.approx(2.0)  # 1 ms on the wire + 1 ms in the client


@pytest.mark.timeout(240)
def test_our_client_against_the_timing_server(tmp_path):
    out = tmp_path / "check"
    p = subprocess.run([sys.executable, "-m", "sparse24.loadtest.client_check", "--concurrency", "4", "--tools",
                        "ours", "--duration-s", "2", "--tokens", "16", "--port", "8391", "--out", str(out)],
                       capture_output=True, text=True, timeout=200)
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads(out.with_suffix(".json").read_text())["rows"][0]["ours"]
    assert row["failed"] == 0 and row["truth"]["ttft"]["n"] > 0
    # the server keeps its schedule (within 2 ms on a busy 2-core box) and our client adds little to it
    assert row["truth"]["itl"]["p50_ms"] == pytest.approx(5.0, abs=2.0)
    assert row["measured"]["itl"]["p50_ms"] == pytest.approx(row["truth"]["itl"]["p50_ms"], abs=1.0)
    assert 0.0 <= row["chunk_lag_ms"]["p50_ms"] < 5.0
    assert "| 4 | ours |" in out.with_suffix(".md").read_text()
