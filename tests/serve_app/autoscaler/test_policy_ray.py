"""ItlSlaPolicy inside a real Ray Serve controller, driven by a small fake-work deployment whose
replicas stream "tokens" with a gap that grows with their concurrency and report our stats.

Ray's default policy is configured never to scale (target_ongoing_requests 1e9, as Ray Serve LLM
does), so any scale-up proves the custom policy is the one running.
"""

import asyncio
import os
import time
import urllib.request

import pytest

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402

from sparse24.serve_app.autoscaler import POLICY_IMPORT_PATH  # noqa: E402
from sparse24.serve_app.autoscaler.stats import ReplicaStatsWindow  # noqa: E402

METRICS_PORT = 8302
BASE_GAP_S = 0.004  # fake ITL = BASE_GAP_S * (1 + in-flight requests on the replica)


@serve.deployment(max_ongoing_requests=200, ray_actor_options={"num_cpus": 0})
class FakeLLM:
    def __init__(self):
        self.window = ReplicaStatsWindow(window_s=3.0)
        self.inflight = 0

    async def __call__(self, n_tokens: int) -> int:
        self.inflight += 1
        self.window.request_started(64, n_tokens)
        try:
            for _ in range(n_tokens):
                gap = BASE_GAP_S * (1 + self.inflight)
                await asyncio.sleep(gap)
                self.window.token_gaps([gap])
            return n_tokens
        finally:
            self.inflight -= 1
            self.window.request_finished()

    def record_autoscaling_stats(self):
        return self.window.snapshot()


def _autoscaling(policy_key: str = "policy_function"):
    return {
        "min_replicas": 1, "max_replicas": 3, "initial_replicas": 1,
        "target_ongoing_requests": 1e9,  # Ray's default policy would never scale
        "upscale_delay_s": 0, "downscale_delay_s": 0,
        "metrics_interval_s": 0.5, "look_back_period_s": 2.0,
        "policy": {policy_key: POLICY_IMPORT_PATH, "policy_kwargs": {
            "sla": {"itl_percentile": 90, "itl_target_ms": 30.0},
            "settle_s": 2.0, "breach_stable_s": 1.0, "downscale_stable_s": 3.0, "min_itl_samples": 10,
            "feedback_low_watermark": 0.6}},
    }


@pytest.fixture(scope="module")
def serve_instance():
    """Our own Ray (unless this pytest process already runs one: then reuse it and leave it up)."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, _metrics_export_port=METRICS_PORT, log_to_driver=False,
                 _system_config={"metrics_report_interval_ms": 1000},
                 runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    serve.start(proxy_location="Disabled")  # driven through handles; no HTTP proxy needed
    from ray._private import worker

    yield worker._global_node.metrics_export_port
    if started:
        serve.shutdown()
        ray.shutdown()


def _num_running(app: str) -> int:
    st = serve.status().applications[app].deployments["FakeLLM"]
    return st.replica_states.get("RUNNING", 0)


async def _load(handle, stop: asyncio.Event, streams: int):
    async def one():
        while not stop.is_set():
            await handle.remote(25)
    await asyncio.gather(*(one() for _ in range(streams)))


def _wait(pred, timeout_s: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_itl_breach_scales_up_and_idle_scales_down(serve_instance):
    app = "itlsla"
    handle = serve.run(FakeLLM.options(autoscaling_config=_autoscaling()).bind(), name=app, route_prefix=None)
    assert _num_running(app) == 1

    async def scenario():
        stop = asyncio.Event()
        # 12 streams on one replica: gap 4 ms * 13 = 52 ms > 30 ms target
        task = asyncio.ensure_future(_load(handle, stop, 12))
        loop = asyncio.get_running_loop()
        up_s = await loop.run_in_executor(None, _wait, lambda: _num_running(app) >= 2, 45.0, "scale-up to >= 2")
        stop.set()
        await task  # every request of the load completed without error
        return up_s

    up_s = asyncio.run(scenario())
    assert up_s < 45.0
    down_s = _wait(lambda: _num_running(app) == 1, 45.0, "scale-down to 1 after the load stopped")
    assert down_s < 45.0

    # The controller exports the policy's Prometheus series (ray_ prefix added by Ray's exporter).
    def exported():
        with urllib.request.urlopen(f"http://127.0.0.1:{serve_instance}/metrics", timeout=5) as r:
            return "sparse24_autoscaler_desired_replicas" in r.read().decode()
    _wait(exported, 30.0, "sparse24_autoscaler_* series on Ray's metrics endpoint")
    serve.delete(app)


def test_misspelled_policy_key_falls_back_to_default_and_does_not_scale(serve_instance):
    """Control for the test above: Ray ignores an unknown key and runs its default policy."""
    app = "typo"
    handle = serve.run(FakeLLM.options(autoscaling_config=_autoscaling("policy_functoin")).bind(), name=app, route_prefix=None)

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.ensure_future(_load(handle, stop, 12))
        await asyncio.sleep(10.0)
        n = _num_running(app)
        stop.set()
        await task
        return n

    assert asyncio.run(scenario()) == 1
    serve.delete(app)
