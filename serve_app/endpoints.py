"""Model endpoints: what the ingress calls per served model, whether its engine is in another deployment
(`RemoteEndpoint`, through a Ray Serve handle) or in the ingress process itself (`LocalEndpoint`, colocated).

Both hand back the same reply stream (a `Reply`, then SSE chunks if it says so), so the HTTP layer
(`frontend.py`) has one code path for both modes.
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Protocol

from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from .engine_factory import EngineFactory, start_vllm_engine
from .errors import ApiError
from .model_server import ModelServer
from .replies import Reply

# Retry-After (s) when Ray Serve's queue in front of the model replicas is full.
_BACKPRESSURE_RETRY_AFTER_S = 1


class ReplyStream(Protocol):
    """A `Reply` then, if it `is_stream`, SSE text chunks; `aclose()` abandons it (aborts the engine request)."""

    def __aiter__(self) -> AsyncIterator[Reply | str]: ...

    async def __anext__(self) -> Reply | str: ...

    async def aclose(self) -> None: ...


class ModelEndpoint(Protocol):
    """One served model as the ingress sees it."""

    def generate(self, kind: str, request: Any) -> ReplyStream:
        """Serve a parsed request (`kind`: see `requests.KINDS`)."""
        ...

    async def model_card(self) -> dict[str, Any]:
        """vLLM's `/v1/models` card of the model."""
        ...

    async def stats(self) -> dict[str, Any]:
        """The serving replica's engine stats (`ModelServer.stats`)."""
        ...

    async def check_health(self) -> None:
        """Raise if this ingress replica cannot serve the model and Ray should replace it."""
        ...

    def autoscaling_stats(self) -> dict[str, float]:
        """What this ingress replica reports to Ray's autoscaler for the model (empty: not its business)."""
        ...


class LocalEndpoint:
    """Colocated: the model's `ModelServer` (engine included) lives in the ingress process; no hop per chunk."""

    def __init__(self, server: ModelServer):
        self.server = server

    @classmethod
    async def start(cls, model: dict[str, Any], cache_dir: str,
                    engine_factory: EngineFactory = start_vllm_engine) -> "LocalEndpoint":
        return cls(await ModelServer.create(model, cache_dir, engine_factory))

    @property
    def name(self) -> str:
        return self.server.cfg.name

    def generate(self, kind: str, request: Any) -> ReplyStream:
        return self.server.generate(kind, request)

    async def model_card(self) -> dict[str, Any]:
        return await self.server.model_card()

    async def stats(self) -> dict[str, Any]:
        return await self.server.stats()

    async def check_health(self) -> None:
        # The engine is this replica's: a dead engine makes Ray replace the ingress replica.
        await self.server.check_health()

    def autoscaling_stats(self) -> dict[str, float]:
        return self.server.record_autoscaling_stats()


class _RemoteReplyStream:
    """A streaming handle call seen as a `ReplyStream` (closing it cancels the call in the model replica)."""

    def __init__(self, name: str, gen: DeploymentResponseGenerator):
        self._name = name
        self._gen = gen

    def __aiter__(self) -> "_RemoteReplyStream":
        return self

    async def __anext__(self) -> Reply | str:
        try:
            return await self._gen.__anext__()
        except BackPressureError:
            raise ApiError(503, f"model {self._name!r} is overloaded (Ray Serve queue full); retry later",
                           retry_after_s=_BACKPRESSURE_RETRY_AFTER_S) from None

    async def aclose(self) -> None:
        self._gen.cancel()


class RemoteEndpoint:
    """Two-hop: the model's replicas form their own deployment (`llm-<name>`), called through its handle."""

    def __init__(self, name: str, handle: DeploymentHandle):
        self.name = name
        self._handle = handle
        self._stream = handle.options(stream=True)

    def generate(self, kind: str, request: Any) -> ReplyStream:
        return _RemoteReplyStream(self.name, self._stream.generate.remote(kind, request))

    async def model_card(self) -> dict[str, Any]:
        return await self._handle.model_card.remote()

    async def stats(self) -> dict[str, Any]:
        return await self._handle.stats.remote()

    async def check_health(self) -> None:
        # The model replicas are their deployment's: Ray health-checks and replaces them itself.
        return None

    def autoscaling_stats(self) -> dict[str, float]:
        return {}
