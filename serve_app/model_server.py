"""Ray Serve deployment whose replicas each own one vLLM engine for one served model.

Thin adapter: admission control (bounded in-flight count -> 429 + Retry-After), metrics and the autoscaler's
stats window around a `ServingEngine` (vLLM's `EngineHost` unless another `EngineFactory` is injected). The
OpenAI ingress calls `generate` through a streaming DeploymentHandle (`RemoteEndpoint`), or in its own process
when colocated (`LocalEndpoint`).
"""
from __future__ import annotations

import logging
import os
from typing import Any, AsyncIterator

from ray import serve

from .config import ModelConfig
from .engine_factory import EngineFactory, start_vllm_engine
from .errors import error_body
from .metrics import EngineStatsSink, ReplicaMetrics
from .replies import Reply

logger = logging.getLogger(__name__)
# Rough prompt-length estimate for the autoscaler's workload matching (~4 characters per BPE token in English):
# exact counts would need a second tokenization on the request path.
_CHARS_PER_TOKEN = 4


def _prompt_chars(kind: str, request: Any) -> int:
    if kind == "chat":
        total = 0
        for m in request.messages:
            content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
            total += len(content) if isinstance(content, str) else 0
        return total
    prompt = request.prompt
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return len(prompt) * _CHARS_PER_TOKEN
    return sum(len(p) if isinstance(p, str) else len(p) * _CHARS_PER_TOKEN for p in (prompt or []))


def _make_window():
    try:
        from .autoscaler.stats import ReplicaStatsWindow
    except ImportError:  # the autoscaler package is optional for serving
        return None
    return ReplicaStatsWindow()


class ModelServer:
    """One replica = one vLLM engine. Constructed by Ray Serve with a validated `ModelConfig` dict."""

    async def __init__(self, model: dict[str, Any], cache_dir: str, engine_factory: EngineFactory = start_vllm_engine):
        await self.setup(model, cache_dir, engine_factory)

    @classmethod
    async def create(cls, model: dict[str, Any], cache_dir: str,
                     engine_factory: EngineFactory = start_vllm_engine) -> "ModelServer":
        """The same replica object outside Ray Serve's constructor (the ingress hosts one when colocated)."""
        self = cls.__new__(cls)
        await self.setup(model, cache_dir, engine_factory)
        return self

    async def setup(self, model: dict[str, Any], cache_dir: str, engine_factory: EngineFactory) -> None:
        self.cfg = ModelConfig.model_validate(model)
        self.metrics = ReplicaMetrics(self.cfg.name)
        self.sink = EngineStatsSink(self.metrics, _make_window())
        self.host = await engine_factory(self.cfg, cache_dir, self.sink)
        self.inflight = 0
        self.aborted = 0
        self._limit = self.cfg.admission.max_inflight
        self._retry_after = self.cfg.admission.retry_after_s
        logger.info("replica for %s ready, pid %d", self.cfg.name, os.getpid())

    async def generate(self, kind: str, request: Any) -> AsyncIterator[Reply | str]:
        """Stream a reply (see `EngineHost.generate`); refuse at once when the replica is full."""
        if kind in ("tokenize", "detokenize"):  # no generation: no admission slot, no latency stats
            async for item in self.host.generate(kind, request):
                yield item
            return
        if self.inflight >= self._limit:
            msg = (f"model {self.cfg.name!r} is at capacity ({self._limit} requests in flight on this replica); "
                   f"retry after {self._retry_after} s")
            self.metrics.error("RateLimitError", 429)
            yield Reply.json(429, error_body(429, msg), {"Retry-After": str(self._retry_after)})
            return
        self.inflight += 1
        self.metrics.admitted_inflight.set(self.inflight)
        self.sink.request_started(_prompt_chars(kind, request) // _CHARS_PER_TOKEN, request.max_tokens or 0)
        finished = False
        try:
            async for item in self.host.generate(kind, request):
                if isinstance(item, Reply):
                    if item.is_error:
                        self.metrics.error(item.error_type, item.status)
                    # A whole answer ends the reply: a caller that stops reading here (the colocated ingress
                    # does) has not aborted anything.
                    finished = not item.is_stream
                yield item
            finished = True
        finally:
            if not finished:
                self.aborted += 1  # client went away (or the ingress died): vLLM aborted the request
            self.inflight -= 1
            self.metrics.admitted_inflight.set(self.inflight)
            self.sink.request_finished()

    async def stats(self) -> dict[str, Any]:
        """Engine truth for health checks and tests: requests vLLM still tracks, running, waiting."""
        unfinished = self.host.unfinished_requests()
        return {
            "model": self.cfg.name, "pid": os.getpid(), "inflight": self.inflight,
            "engine_unfinished": unfinished, "running": self.sink.running, "waiting": self.sink.waiting,
            "aborted": self.aborted, "finished_by_reason": dict(self.sink.finished_by_reason),
            "max_model_len": self.host.max_model_len,
        }

    async def model_card(self) -> dict[str, Any]:
        """vLLM's `/v1/models` card for this model, as `vllm serve` shows it."""
        return await self.host.model_card()

    async def check_health(self) -> None:
        """Ray Serve's replica health check: a dead engine makes Ray replace this replica."""
        await self.host.check_health()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Recent ITL/TTFT percentiles and load for the ITL-SLA autoscaler (names: serve_app.autoscaler.stats)."""
        return self.sink.autoscaling_stats()

    def __del__(self):
        host = getattr(self, "host", None)
        if host is not None:
            host.shutdown()


ModelServerDeployment = serve.deployment(ModelServer)
