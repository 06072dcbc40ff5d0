"""Turn a raw HTTP body into a parsed vLLM OpenAI request, or an `ApiError` (OpenAI-style 4xx).

Checks that need no engine happen here, at the ingress, so bad input never reaches a replica: body size,
JSON syntax, object shape, field types (vLLM's own pydantic request models), model name. Checks that need the
tokenizer or the context length (prompt too long, max_tokens beyond the context) are vLLM's, in the replica.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from .errors import ApiError

KINDS = ("chat", "completion")


def _request_class(kind: str):
    from .vllm_compat import request_class

    return request_class(kind)


def _first_error(exc: ValidationError) -> ApiError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = f"{loc}: {err['msg']}" if loc else err["msg"]
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return ApiError(400, msg, param=str(err["loc"][0]) if err["loc"] else None)


def parse_body(body: bytes, max_body_bytes: int) -> dict[str, Any]:
    """JSON object from the body; 413 if too large, 400 if not a JSON object."""
    if len(body) > max_body_bytes:
        raise ApiError(413, f"request body is {len(body)} bytes; the limit is {max_body_bytes} bytes")
    if not body.strip():
        raise ApiError(400, "request body is empty; expected a JSON object")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(data).__name__}")
    return data


def resolve_model(data: dict[str, Any], served: list[str]) -> str:
    """The served model the request names (404 if unknown; the only model if `model` is omitted)."""
    model = data.get("model")
    if model is None:
        if len(served) == 1:
            data["model"] = served[0]
            return served[0]
        raise ApiError(400, f"`model` is required; served models: {served}", param="model")
    if not isinstance(model, str):
        raise ApiError(400, f"`model` must be a string, got {type(model).__name__}", param="model")
    if model not in served:
        raise ApiError(404, f"The model `{model}` does not exist. Served models: {served}", param="model")
    return model


def parse_request(kind: str, data: dict[str, Any]) -> Any:
    """vLLM's request object for `kind` ("chat" or "completion"); 400 naming the first bad field."""
    from .vllm_compat import client_error_classes

    cls = _request_class(kind)
    if kind == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "`messages` must be a non-empty array of chat messages", param="messages")
    elif "prompt" not in data and "prompt_embeds" not in data:
        raise ApiError(400, "`prompt` is required", param="prompt")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None
    except client_error_classes() as exc:  # vLLM's model validators raise VLLMValidationError
        raise ApiError(400, str(exc), param=getattr(exc, "parameter", None)) from None
