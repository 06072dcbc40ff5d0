"""Turn a raw HTTP body into a parsed vLLM OpenAI request, or an `ApiError` (OpenAI-style 4xx).

Checks that need no engine happen here, at the ingress, so bad input never reaches a replica: body size and
nesting depth (both before JSON parsing), JSON syntax (standard JSON only: no NaN/Infinity, no lone UTF-16
surrogates, no integers longer than Python converts), object shape, field types (vLLM's own pydantic request
models), model name. Checks that need the tokenizer or the context length (prompt too long, max_tokens beyond
the context) are vLLM's, in the replica.

Contract (pinned by a property-based test): for any body, these functions return a parsed request or raise
`ApiError` with a 4xx status and a message; nothing else escapes.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from .errors import ApiError

KINDS = ("chat", "completion", "tokenize", "detokenize")
# Longest echo of client input inside an error message (a 1 MiB bogus model name must not come back whole).
_MAX_ECHO_CHARS = 200
# Validation errors spelled out in one message; vLLM's server bounds its list the same way (10).
_MAX_REPORTED_ERRORS = 10
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.ASCII)
# pydantic-core's names for union branches and wrappers inside an error `loc`, and the class names of union
# members (`ChatCompletionUserMessageParam`): not field names a client sent (those are snake_case or indices).
_INTERNAL_LOC = re.compile(r"[\[\](){}]|^(function-\w+|json-or-python|lax-or-strict|chain|default|nullable|"
                           r"tagged-union|union|str|int|float|bool|bytes|list|tuple|dict|set|none)$|"
                           r"^[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+$")


def _request_class(kind: str, data: dict[str, Any]):
    from . import vllm_compat

    if kind == "tokenize":  # vLLM's /tokenize takes a completion-style or a chat-style body
        completion_cls, chat_cls = vllm_compat.tokenize_request_classes()
        return chat_cls if "messages" in data else completion_cls
    return vllm_compat.request_class(kind)


def _echo(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_ECHO_CHARS else text[:_MAX_ECHO_CHARS] + "...[truncated]"


def json_depth_exceeds(body: bytes, max_depth: int) -> int | None:
    """The nesting depth of `body` if it exceeds `max_depth` (brackets inside JSON strings ignored), else None.

    Runs on the raw bytes before any parser recurses; linear time (C regex + numpy), and skipped outright when
    the body has fewer opening brackets than the limit (every ordinary request).
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return None
    import numpy as np

    brackets = _JSON_STRING.sub(b"", body).translate(None, bytes(set(range(256)) - set(b"[]{}")))
    steps = np.frombuffer(brackets, dtype=np.uint8)
    depth = int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1), dtype=np.int64).max())
    return depth if depth > max_depth else None


def _reject_constant(name: str):
    raise ApiError(400, f"request body is not valid JSON: {name} is not a JSON number")


def parse_body(body: bytes, max_body_bytes: int, max_depth: int = 64) -> dict[str, Any]:
    """JSON object from the body; 413 if too large, 400 if too deeply nested or not a standard JSON object."""
    if len(body) > max_body_bytes:
        raise ApiError(413, f"request body is {len(body)} bytes; the limit is {max_body_bytes} bytes")
    if not body.strip():
        raise ApiError(400, "request body is empty; expected a JSON object")
    depth = json_depth_exceeds(body, max_depth)
    if depth is not None:
        raise ApiError(400, f"request body is nested {depth} levels deep; the limit is {max_depth} levels")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
        if _SURROGATE_ESCAPE.search(body):  # lone surrogates parse, then break every UTF-8 encoder downstream
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    except UnicodeEncodeError:
        raise ApiError(400, "request body is not valid JSON: a string holds an unpaired UTF-16 surrogate "
                            "(\\ud800-\\udfff escape without its pair)") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer literal of more than 4300 digits
        raise ApiError(400, f"request body is not valid JSON: {_echo(str(exc))}") from None
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
        raise ApiError(404, f"The model `{_echo(model)}` does not exist. Served models: {served}", param="model")
    return model


def _clean_loc(loc: tuple) -> str:
    """pydantic's error location as the dotted field path a client sent (union branch markers dropped)."""
    parts = [str(p) for p in loc if not _INTERNAL_LOC.search(str(p))]
    return ".".join(parts or [str(p) for p in loc])


def _is_branch_type_mismatch(err: dict) -> bool:
    """A union branch that failed only because the value has another type (says nothing about the value)."""
    return err["type"].endswith("_type") and any(_INTERNAL_LOC.search(str(p)) for p in err["loc"])


def _describe(errors: list[dict], prefix: str = "") -> list[str]:
    """One line per bad field, most telling first: for a union field, a branch whose type matched the input
    (`stop: List should have at most 4 items`) beats the branches that did not (`stop: ... valid string`)."""
    by_loc: dict[str, list[dict]] = {}
    for err in errors:
        by_loc.setdefault(".".join(p for p in (prefix, _clean_loc(err["loc"])) if p), []).append(err)
    lines = []
    telling_locs = [loc for loc, errs in by_loc.items() if not all(map(_is_branch_type_mismatch, errs))]
    for loc, errs in by_loc.items():
        telling = [e for e in errs if not _is_branch_type_mismatch(e)]
        if not telling and any(t.startswith(loc + ".") for t in telling_locs):
            continue  # `prompt: got list, expected str` says nothing once `prompt.0: must be >= 0` is said
        if telling:  # several union branches that each want something else: say all of it, once
            msg = " or ".join(dict.fromkeys(e["msg"] for e in telling))
        else:  # the value's type matches no branch: list what was accepted
            got = type(errs[0].get("input")).__name__
            msg = f"got {got}, expected one of: {', '.join(sorted({str(e['loc'][-1]) for e in errs}))}"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """400 naming the bad fields, in vLLM's server wording (`N validation error(s):` then one per field);
    `prefix` is the path of the object validated (when it is not the whole body)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=True)
    lines = _describe(errors, prefix)
    label = "error" if len(lines) == 1 else "errors"
    shown = lines[:_MAX_REPORTED_ERRORS]
    msg = f"{len(lines)} validation {label}: " + "; ".join(_echo(line) if len(line) > 400 else line for line in shown)
    if len(lines) > len(shown):
        msg += f"; ...and {len(lines) - len(shown)} more"
    first = ".".join(p for p in (prefix, _clean_loc(errors[0]["loc"]) if errors else "") if p) or None
    return ApiError(400, msg, param=first)


def _materialize(value: Any, path: str, depth: int = 0) -> Any:
    """Replace pydantic's lazy `Iterable[...]` validators (chat content parts, tool calls) by lists, recursively.

    pydantic validates an `Iterable` field only when it is iterated, and its iterator cannot be pickled: left
    lazy, a bad content part would surface deep in the replica, and a good one could not cross the Ray handle.
    """
    if depth > 32:
        return value
    if isinstance(value, Iterator):
        try:
            value = list(value)
        except ValidationError as exc:
            raise validation_error(exc, prefix=path) from None
    if isinstance(value, list):
        return [_materialize(v, f"{path}.{i}", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _materialize(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
    return value


def parse_request(kind: str, data: dict[str, Any]) -> Any:
    """vLLM's request object for `kind` (one of KINDS); 400 naming the bad fields."""
    from .vllm_compat import client_error_classes

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cls = _request_class(kind, data)
    if kind == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "`messages` must be a non-empty array of chat messages", param="messages")
    elif kind == "completion" and "prompt" not in data and "prompt_embeds" not in data:
        raise ApiError(400, "`prompt` is required", param="prompt")
    try:
        request = cls.model_validate(data)
        if getattr(request, "messages", None) is not None:
            request.messages = _materialize(request.messages, "messages")
        return request
    except ValidationError as exc:
        raise validation_error(exc) from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply to validate") from None
    except client_error_classes() as exc:  # vLLM's model validators raise VLLMValidationError
        raise ApiError(400, _echo(str(exc)) if len(str(exc)) > 1000 else str(exc),
                       param=getattr(exc, "parameter", None)) from None
