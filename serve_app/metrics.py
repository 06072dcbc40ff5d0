"""Prometheus metrics of one model replica, fed by vLLM's own per-iteration stats.

A vLLM `StatLoggerBase` (`EngineStatsLogger`) receives every engine iteration's stats in the replica process
(the same numbers vLLM's own `vllm:*` metrics use) and records them into Ray Serve metrics, which Ray exports
with `deployment`/`replica`/`application` tags (plus our `model_name`). Ray prefixes exported names with
`ray_`, so `vllm_time_to_first_token_seconds` is scraped as `ray_vllm_time_to_first_token_seconds`: the
same name and meaning as vLLM's `vllm:time_to_first_token_seconds` behind Ray, with finer buckets.

The same feed drives the autoscaler's per-replica window (`sparse24.serve_app.autoscaler.stats`).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from ray.serve import metrics as serve_metrics

# Buckets (seconds): 2.5-5 ms steps through the 10-100 ms band where ITL/TTFT SLAs sit, coarser beyond.
LATENCY_BUCKETS_S = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.035, 0.04,
    0.045, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
    5.0, 10.0, 20.0, 30.0, 60.0,
]
# Token gaps on a fast GPU are 5-30 ms; sub-ms buckets catch batching artefacts (several tokens per chunk).
ITL_BUCKETS_S = [0.0005, 0.00075] + LATENCY_BUCKETS_S[:-4]
E2E_BUCKETS_S = LATENCY_BUCKETS_S + [120.0, 300.0, 600.0]
_TAGS = ("model_name",)


class ReplicaMetrics:
    """The Prometheus series of one model replica (created once per replica process)."""

    def __init__(self, model_name: str):
        def hist(name: str, doc: str, buckets: list[float]) -> serve_metrics.Histogram:
            h = serve_metrics.Histogram(name, description=doc, boundaries=buckets, tag_keys=_TAGS)
            h.set_default_tags({"model_name": model_name})
            return h

        def gauge(name: str, doc: str) -> serve_metrics.Gauge:
            g = serve_metrics.Gauge(name, description=doc, tag_keys=_TAGS)
            g.set_default_tags({"model_name": model_name})
            return g

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> serve_metrics.Counter:
            c = serve_metrics.Counter(name, description=doc, tag_keys=_TAGS + extra)
            c.set_default_tags({"model_name": model_name})
            return c

        self.ttft = hist("vllm_time_to_first_token_seconds", "Time to first token, seconds.", LATENCY_BUCKETS_S)
        self.itl = hist("vllm_inter_token_latency_seconds", "Gap between consecutive output tokens, seconds.",
                        ITL_BUCKETS_S)
        self.tpot = hist("vllm_request_time_per_output_token_seconds",
                         "Mean time per output token of a finished request (decode time / (tokens-1)), seconds.",
                         ITL_BUCKETS_S)
        self.e2e = hist("vllm_e2e_request_latency_seconds", "End-to-end request latency in the engine, seconds.",
                        E2E_BUCKETS_S)
        self.queue = hist("vllm_request_queue_time_seconds", "Time a request waited in the engine queue, seconds.",
                          LATENCY_BUCKETS_S)
        self.running = gauge("vllm_num_requests_running", "Requests in the engine's running batch.")
        self.waiting = gauge("vllm_num_requests_waiting", "Requests waiting in the engine's queue.")
        self.kv_usage = gauge("vllm_kv_cache_usage_perc", "KV-cache usage, fraction 0-1.")
        self.prompt_tokens = counter("vllm_prompt_tokens_total", "Prefilled prompt tokens (rate = prompt tokens/s).")
        self.generation_tokens = counter("vllm_generation_tokens_total",
                                         "Generated tokens (rate = output tokens/s).")
        self.finished = counter("vllm_request_success_total", "Finished requests by finish reason.",
                                ("finished_reason",))
        self.admitted_inflight = gauge("sparse24_replica_inflight_requests",
                                       "Requests admitted by this replica's bounded admission.")
        self.errors = counter("sparse24_request_errors_total", "Requests answered with an error, by type.",
                              ("error_type", "status_code"))

    def error(self, error_type: str, status_code: int) -> None:
        self.errors.inc(1, tags={"error_type": error_type, "status_code": str(status_code)})


class EngineStatsSink:
    """Receives vLLM's per-iteration stats; updates Prometheus series and the autoscaler window.

    Thread-safe: vLLM's output handler calls `record`, Ray Serve calls `snapshot` from another thread.
    """

    def __init__(self, metrics: ReplicaMetrics | None, window: Any | None):
        self.metrics = metrics
        self.window = window
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.finished_by_reason: dict[str, int] = {}

    def record(self, scheduler_stats: Any, iteration_stats: Any) -> None:
        m = self.metrics
        if scheduler_stats is not None:
            self.running = scheduler_stats.num_running_reqs
            self.waiting = scheduler_stats.num_waiting_reqs
            if m is not None:
                m.running.set(self.running)
                m.waiting.set(self.waiting)
                m.kv_usage.set(scheduler_stats.kv_cache_usage)
        if iteration_stats is None:
            return
        it = iteration_stats
        if m is not None:
            if it.num_prompt_tokens:
                m.prompt_tokens.inc(it.num_prompt_tokens)
            if it.num_generation_tokens:
                m.generation_tokens.inc(it.num_generation_tokens)
            for v in it.time_to_first_tokens_iter:
                m.ttft.observe(v)
            for v in it.inter_token_latencies_iter:
                m.itl.observe(v)
        for fin in it.finished_requests:
            reason = str(getattr(fin.finish_reason, "name", fin.finish_reason)).lower()
            self.finished_by_reason[reason] = self.finished_by_reason.get(reason, 0) + 1
            if m is not None:
                m.finished.inc(1, tags={"finished_reason": reason})
                m.e2e.observe(fin.e2e_latency)
                m.queue.observe(fin.queued_time)
                if fin.num_generation_tokens > 1:
                    m.tpot.observe(fin.decode_time / (fin.num_generation_tokens - 1))
        if self.window is not None and (it.inter_token_latencies_iter or it.time_to_first_tokens_iter):
            now = time.monotonic()
            with self._lock:
                self.window.token_gaps(it.inter_token_latencies_iter, now=now)
                for v in it.time_to_first_tokens_iter:
                    self.window.first_token(v, now=now)

    def request_started(self, prompt_tokens: int, max_tokens: int) -> None:
        if self.window is not None:
            with self._lock:
                self.window.request_started(prompt_tokens, max_tokens)

    def request_finished(self) -> None:
        if self.window is not None:
            with self._lock:
                self.window.request_finished()

    def autoscaling_stats(self) -> dict[str, float]:
        if self.window is None:
            return {}
        with self._lock:
            return self.window.snapshot()


def make_stat_logger_factory(sink: EngineStatsSink):
    """A vLLM stat-logger factory `(vllm_config, engine_index) -> StatLoggerBase` writing into `sink`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class EngineStatsLogger(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0):
            self.engine_index = engine_index

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            sink.record(scheduler_stats, iteration_stats)

        def log_engine_initialized(self):
            pass

    return EngineStatsLogger
