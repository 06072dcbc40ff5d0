"""Overload (bounded admission -> 429 + Retry-After) and a replica killed mid-stream (clean error, replaced)."""
from __future__ import annotations

import contextlib
import os
import signal

import pytest

pytestmark = pytest.mark.timeout(600)
# ~2000 tokens: seconds of decoding even on a fast CPU, so held streams are surely still running.
LONG = {"prompt": "Hold the line", "max_tokens": 2000, "stream": True, "ignore_eos": True}


def test_overload_is_refused_at_once_with_retry_after(http, sv):
    # the dense model admits 2 requests per replica (conftest); hold 2 streams open, then ask for more.
    sv.wait_for(lambda: sv.model_stats(http, sv.b)["inflight"] == 0, 60, "the dense model to be idle")
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            r = stack.enter_context(http.stream("POST", "/v1/completions", json={"model": sv.b, **LONG}))
            assert r.status_code == 200
            assert next(r.iter_lines()).startswith("data: ")
        assert sv.model_stats(http, sv.b)["inflight"] == 2
        refused = [http.post("/v1/completions", json={"model": sv.b, "prompt": "x", "max_tokens": 4})
                   for _ in range(4)]
        for r in refused:
            assert r.status_code == 429, r.text[:300]
            assert r.headers["retry-after"] == "2"
            assert r.json()["error"]["type"] == "RateLimitError"
        # The other model is unaffected by tiny-b's overload.
        assert http.post("/v1/completions", json={"model": sv.main, "prompt": "x", "max_tokens": 2}).status_code == 200
    sv.wait_for(lambda: sv.model_stats(http, sv.b)["inflight"] == 0, 60, "held streams to be released")
    assert http.post("/v1/completions", json={"model": sv.b, "prompt": "x", "max_tokens": 2}).status_code == 200


def test_replica_killed_mid_stream_gives_clean_error_and_is_replaced(oai, http, sv):
    import httpx
    import openai

    old_pid = sv.model_stats(http, sv.b)["pid"]
    stream = oai.completions.create(model=sv.b, prompt="Hold the line", max_tokens=2000, stream=True,
                                    extra_body={"ignore_eos": True})
    received = 0
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in stream:
            received += 1
            if received == 3:
                os.kill(old_pid, signal.SIGKILL)  # the replica process this test session started
    assert 3 <= received < 2000

    def replaced():
        s = sv.model_stats(http, sv.b)
        return s if s.get("pid") not in (None, old_pid) else None

    new = sv.wait_for(replaced, timeout_s=240, what="Ray Serve to replace the killed replica", interval_s=1.0)
    assert new["pid"] != old_pid
    r = http.post("/v1/completions", json={"model": sv.b, "prompt": "after restart", "max_tokens": 3})
    assert r.status_code == 200
