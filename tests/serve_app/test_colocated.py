"""`ingress.colocate_engine: true`: the engine lives inside the ingress replica (one Ray hop less per chunk).

A second, small app on the same Ray Serve instance (route prefix /colo, the dense tiny model, no API key).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(600)
APP = "sparse24-colo"
MODEL = "tiny-colo"


@pytest.fixture(scope="module")
def colo(serve_app, tmp_path_factory):
    from ray import serve

    from sparse24.serve_app.app import build_app

    args = {
        "cache_dir": str(tmp_path_factory.mktemp("colo_models")),
        "ingress": {"api_key_env": None, "colocate_engine": True},
        "models": [{
            "name": MODEL, "source": "tiny-dense",
            "engine": {"dtype": "bfloat16", "max_model_len": 2048, "cpu_kv_cache_gib": 1},
            "admission": {"max_inflight": 8},
            "deployment": {"num_cpus": 0.5, "max_ongoing_requests": 32,
                           "env_vars": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}},
        }],
    }
    serve.run(build_app(args), name=APP, route_prefix="/colo")
    try:
        yield f"{serve_app}/colo"
    finally:
        serve.delete(APP)


def test_colocated_app_is_one_deployment_and_streams(colo, sv):
    import openai
    from ray import serve

    status = serve.status().applications[APP]
    assert set(status.deployments) == {"OpenAIIngress"}
    client = openai.OpenAI(base_url=f"{colo}/v1", api_key="unused", timeout=sv.timeout_s, max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=9,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True})
    usage = [c.usage.completion_tokens for c in stream if c.usage is not None]
    assert usage == [9]


def test_colocated_disconnect_aborts_and_autoscaling_stats_come_from_the_ingress(colo, sv):
    import httpx
    from ray import serve

    from sparse24.serve_app.autoscaler import stats as names

    with httpx.Client(base_url=colo, timeout=sv.timeout_s) as http:
        def stats():
            return http.get("/health").json()["models"][MODEL]

        # settled: the previous test's request may reach the stat logger only now
        before = sv.settled_stats(http, MODEL)
        body = {"model": MODEL, "prompt": "Keep going", "max_tokens": 2000, "stream": True, "ignore_eos": True}
        with http.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert any(next(lines).startswith("data: ") for _ in range(4))
        after = sv.wait_for(lambda: (s := stats())["aborted"] > before["aborted"] and s["engine_unfinished"] == 0
                            and s, timeout_s=30, what="the colocated engine to abort the request")
        assert after["finished_by_reason"].get("length", 0) == before["finished_by_reason"].get("length", 0)
    handle = serve.get_deployment_handle("OpenAIIngress", app_name=APP)
    snap = handle.record_autoscaling_stats.remote().result(timeout_s=30)
    assert snap[names.ITL_SAMPLES] >= 1 and snap[names.ITL_P50_S] > 0
