"""Where a replica's engine comes from: `ServingEngine` is what a `ModelServer` needs of it, an `EngineFactory`
makes one. `start_vllm_engine` (vLLM, the only factory in production) is the default; tests inject fakes so
the serve layer runs without Ray or a vLLM engine.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from .config import ModelConfig
from .metrics import EngineStatsSink
from .replies import Reply


class ServingEngine(Protocol):
    """One started engine serving one model name (`EngineHost` is vLLM's)."""

    @property
    def max_model_len(self) -> int: ...

    def generate(self, kind: str, request: Any) -> AsyncIterator[Reply | str]:
        """A `Reply` first, then SSE text chunks if it `is_stream`; closing it early aborts the request."""
        ...

    def unfinished_requests(self) -> int: ...

    async def model_card(self) -> dict[str, Any]: ...

    async def check_health(self) -> None:
        """Raise if the engine is dead."""
        ...

    def shutdown(self) -> None: ...


# (validated model config, cache dir for built-in model sources, the replica's stats sink) -> started engine.
EngineFactory = Callable[[ModelConfig, str, EngineStatsSink], Awaitable[ServingEngine]]


async def start_vllm_engine(cfg: ModelConfig, cache_dir: str, sink: EngineStatsSink) -> ServingEngine:
    """Resolve the model's weights and start a vLLM engine whose per-iteration stats feed `sink`."""
    from .engine_host import EngineHost
    from .metrics import make_stat_logger_factory
    from ..kernels.checkpoint.model_source import resolve_model_source

    path = await asyncio.to_thread(resolve_model_source, cfg.source, cache_dir)
    host = EngineHost(cfg, path, make_stat_logger_factory(sink))
    await host.start()
    return host
