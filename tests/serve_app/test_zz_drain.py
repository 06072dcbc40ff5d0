"""Graceful drain: deleting the app (what shutdown/downscale do to a replica) lets in-flight streams finish.

Runs last (file name): it deletes the shared app; the session fixture then shuts Serve and Ray down.
"""
from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

pytestmark = pytest.mark.timeout(600)
# ~1000 tokens of the sparse model (CPU reference path) take seconds: the shutdown surely starts mid-stream.
N_STREAMS, MAX_TOKENS = 4, 1000


def test_shutdown_drains_in_flight_streams_untruncated(oai, sv):
    from ray import serve

    started = threading.Barrier(N_STREAMS + 1, timeout=120)

    def one(i: int):
        stream = oai.completions.create(model=sv.main, prompt=f"drain {i}", max_tokens=MAX_TOKENS, stream=True,
                                        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        usage, finish, first = None, None, True
        for c in stream:
            if first:
                first = False
                started.wait()
            if c.usage is not None:
                usage = c.usage.completion_tokens
            if c.choices and c.choices[0].finish_reason:
                finish = c.choices[0].finish_reason
        return usage, finish

    with cf.ThreadPoolExecutor(N_STREAMS) as pool:
        futures = [pool.submit(one, i) for i in range(N_STREAMS)]
        started.wait()  # every stream has its first chunk
        serve.delete(sv.app_name, _blocking=False)
        results = [f.result(timeout=180) for f in futures]
    assert results == [(MAX_TOKENS, "length")] * N_STREAMS
