"""One vLLM async engine plus vLLM's own OpenAI serving objects (chat, completions), in this process.

We build on vLLM's OpenAI layer (`init_app_state` -> `OpenAIServingChat` / `OpenAIServingCompletion`) for
the protocol: prompt rendering, chat templates, sampling-parameter checks, SSE chunk format and usage
accounting are vLLM's, so the API matches `vllm serve` exactly. This module only builds the engine from our
validated `ModelConfig` and hands results back as plain Python values that cross a Ray handle cheaply.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Any, AsyncIterator

from .config import ModelConfig
from .replies import Reply

logger = logging.getLogger(__name__)


def _engine_namespace(model_path: str, cfg: ModelConfig) -> argparse.Namespace:
    """vLLM's CLI namespace (frontend + engine args, vLLM defaults) with our validated values set."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from . import vllm_compat

    args = vllm_compat.make_arg_parser()(FlexibleArgumentParser()).parse_args(["--model", model_path])
    e = cfg.engine
    values = dict(
        served_model_name=[cfg.name], dtype=e.dtype, max_model_len=e.max_model_len, max_num_seqs=e.max_num_seqs,
        gpu_memory_utilization=e.gpu_memory_utilization, enforce_eager=e.enforce_eager, seed=e.seed,
        disable_log_stats=False,  # our stat logger needs vLLM's per-iteration stats
        enable_log_requests=False,
    )
    if e.max_num_batched_tokens is not None:
        values["max_num_batched_tokens"] = e.max_num_batched_tokens
    if e.enable_prefix_caching is not None:
        values["enable_prefix_caching"] = e.enable_prefix_caching
    if e.chat_template is not None:
        values["chat_template"] = e.chat_template
    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    unknown = sorted(set(e.extra) - known)
    if unknown:
        raise ValueError(f"model {cfg.name!r}: engine.extra has unknown vLLM engine args {unknown}")
    values.update(e.extra)
    for k, v in values.items():
        setattr(args, k, v)
    return args


class EngineHost:
    """A started vLLM `AsyncLLM` serving one model name through vLLM's OpenAI serving classes."""

    def __init__(self, cfg: ModelConfig, model_path: str, stat_logger_factory=None):
        self.cfg = cfg
        self.model_path = model_path
        self._stat_logger_factory = stat_logger_factory
        self.engine = None
        self.chat = None
        self.completion = None
        self.models = None
        self.tokenization = None
        self.tokenizer = None

    async def start(self) -> None:
        """Create the engine (spawns vLLM's engine-core process) and the OpenAI serving objects."""
        from starlette.datastructures import State
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        from . import vllm_compat

        init_app_state = vllm_compat.init_app_state()

        if os.environ.get("VLLM_TARGET_DEVICE", "") == "cpu" or self.cfg.deployment.num_gpus == 0:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.cfg.engine.cpu_kv_cache_gib))
        args = _engine_namespace(self.model_path, self.cfg)
        engine_args = AsyncEngineArgs.from_cli_args(args)
        loggers = [self._stat_logger_factory] if self._stat_logger_factory else None
        self.engine = AsyncLLM.from_engine_args(
            engine_args, usage_context=UsageContext.OPENAI_API_SERVER, stat_loggers=loggers,
        )
        state = State()
        tasks = await self.engine.get_supported_tasks()
        await init_app_state(self.engine, state, args, supported_tasks=tasks)
        self.chat = getattr(state, "openai_serving_chat", None)
        self.completion = getattr(state, "openai_serving_completion", None)
        self.models = state.openai_serving_models
        self.tokenization = vllm_compat.serving_tokenization(state)
        if self.chat is None or self.completion is None:
            raise RuntimeError(f"model {self.cfg.name!r}: vLLM built no chat/completion serving (tasks {tasks})")
        self.tokenizer = self.engine.get_tokenizer() if hasattr(self.engine, "get_tokenizer") else None
        logger.info("engine for %s ready (%s)", self.cfg.name, self.model_path)

    @property
    def max_model_len(self) -> int:
        return self.engine.model_config.max_model_len

    def unfinished_requests(self) -> int:
        """Requests vLLM still tracks (running, waiting or being aborted)."""
        return self.engine.output_processor.get_num_unfinished_requests()

    async def check_health(self) -> None:
        """Raise if the engine is dead (vLLM's engine-core process exited)."""
        await self.engine.check_health()

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    async def model_card(self) -> dict[str, Any]:
        """vLLM's own `/v1/models` card of this model (id, root = model path, max_model_len, permission)."""
        (card,) = (await self.models.show_available_models()).data
        return card.model_dump()

    async def generate(self, kind: str, request: Any) -> AsyncIterator[Any]:
        """Serve one parsed request (`kind` "chat", "completion", "tokenize" or "detokenize").

        Yields first a `Reply`: the complete answer (non-streaming result or an OpenAI error), or
        `Reply.stream()` followed by SSE text chunks (`data: ...\\n\\n`).
        Closing this generator early (client gone) aborts the request in the engine: vLLM's generator
        `finally` clause calls `abort` on the engine.
        """
        from .vllm_compat import error_response_class

        ErrorResponse = error_response_class()

        serving = {"chat": self.chat, "completion": self.completion}.get(kind, self.tokenization)
        try:
            if kind == "chat":
                result = await serving.create_chat_completion(request, None)
            elif kind == "completion":
                result = await serving.create_completion(request, None)
            elif kind == "tokenize":
                result = await serving.create_tokenize(request, None)
            else:
                result = await serving.create_detokenize(request, None)
        except Exception as exc:  # vLLM raises ValueError / VLLMValidationError for some bad inputs
            err = serving.create_error_response(exc)
            yield Reply.json(err.error.code, err.model_dump())
            return
        if isinstance(result, ErrorResponse):
            yield Reply.json(result.error.code, result.model_dump())
            return
        if hasattr(result, "__aiter__"):
            yield Reply.stream()
            try:
                async for chunk in result:
                    yield chunk
            finally:
                await result.aclose()
            return
        yield Reply.json(200, result.model_dump(exclude_none=False))
