"""OpenAI-style error bodies: `{"error": {"message", "type", "param", "code"}}` with the HTTP status as code.

The `type` strings follow vLLM's OpenAI server (BadRequestError, NotFoundError, ...), so a client sees the same
errors through Ray Serve as from `vllm serve`.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any

_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowed",
    413: "RequestTooLargeError",
    415: "UnsupportedMediaType",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class ApiError(Exception):
    """An error the client caused or must react to; carries what the HTTP reply needs."""

    def __init__(self, status: int, message: str, param: str | None = None, retry_after_s: int | None = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    @property
    def type(self) -> str:
        return error_type(self.status)

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


def error_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "BadRequestError" if 400 <= status < 500 else "InternalServerError"


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The JSON body of an OpenAI error reply."""
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": int(status)}}


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
