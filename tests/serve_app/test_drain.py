"""Graceful drain: deleting an app (what shutdown/downscale do to a replica) lets in-flight streams finish.

The app deleted is this module's own (ingress + one engine deployment, route prefix /drain, no API key) on the
shared Ray Serve instance, so the test runs in any order beside the others.
"""
from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

pytestmark = pytest.mark.timeout(600)
APP, MODEL, PREFIX = "sparse24-drain", "tiny-drain", "/drain"
# ~1000 tokens of the sparse model (CPU reference path) take seconds: the shutdown surely starts mid-stream.
N_STREAMS, MAX_TOKENS = 4, 1000


@pytest.fixture(scope="module")
def drain_app(serve_app, tmp_path_factory):
    from ray import serve

    from sparse24.serve_app.app import build_app

    args = {
        "cache_dir": str(tmp_path_factory.mktemp("drain_models")),
        "ingress": {"api_key_env": None},
        "models": [{
            "name": MODEL, "source": "tiny-sparse24-fp8",
            "engine": {"dtype": "bfloat16", "max_model_len": 2048, "cpu_kv_cache_gib": 1, "enforce_eager": True},
            "admission": {"max_inflight": 8},
            "deployment": {"num_cpus": 0.5, "max_ongoing_requests": 32, "graceful_shutdown_timeout_s": 60,
                           "env_vars": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}},
        }],
    }
    serve.run(build_app(args), name=APP, route_prefix=PREFIX)
    try:
        yield f"{serve_app}{PREFIX}"
    finally:
        if APP in serve.status().applications:  # the test deletes it; a failure before that must not leak it
            serve.delete(APP)


def test_shutdown_drains_in_flight_streams_untruncated(drain_app, sv):
    import openai
    from ray import serve

    oai = openai.OpenAI(base_url=f"{drain_app}/v1", api_key="unused", timeout=sv.timeout_s, max_retries=0)
    started = threading.Barrier(N_STREAMS + 1, timeout=120)

    def one(i: int):
        stream = oai.completions.create(model=MODEL, prompt=f"drain {i}", max_tokens=MAX_TOKENS, stream=True,
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
        serve.delete(APP, _blocking=False)
        results = [f.result(timeout=180) for f in futures]
    assert results == [(MAX_TOKENS, "length")] * N_STREAMS
