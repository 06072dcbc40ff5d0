"""The head of every reply stream from a model engine to the ingress (both sides of the Ray handle use it).

A reply stream yields one `Reply` first, then, only if that reply says so, SSE text chunks (`data: ...\\n\\n`).
A plain frozen dataclass of builtins: Ray pickles it between deployments, and an old-style positional tuple
can no longer be unpacked wrongly on one side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """Either a whole answer (`body` with its HTTP `status`) or, with `body` None, "SSE chunks follow"."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def stream(cls) -> "Reply":
        """SSE text chunks follow this head (status 200, text/event-stream)."""
        return cls()

    @classmethod
    def json(cls, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> "Reply":
        """The whole answer: a JSON body (a result, or an OpenAI error body when status != 200)."""
        return cls(int(status), body, dict(headers or {}))

    @property
    def is_stream(self) -> bool:
        return self.body is None

    @property
    def is_error(self) -> bool:
        return self.status != 200

    @property
    def error_type(self) -> str:
        """The OpenAI error `type` of an error reply (as its body says)."""
        return self.body["error"]["type"] if self.is_error and self.body else ""
