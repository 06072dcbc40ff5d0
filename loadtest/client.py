"""Gevent-friendly OpenAI streaming client that timestamps every SSE chunk (the one FastHttpUser uses underneath).

Locust's own timing of a `stream=True` request stops at the response headers, so we read the stream
ourselves with geventhttpclient (line by line: a chunk is timed when its `data:` line is complete, like
vLLM's benchmark client does when a message parses) and keep every timestamp in a `RequestSample`.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlparse

from geventhttpclient import HTTPClient

from .metrics import RequestSample

API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
_ERROR_BODY_LIMIT = 2048  # bytes of a non-200 body kept in the sample's error


def parse_sse_line(line: bytes | str) -> dict | str | None:
    """One SSE line -> the decoded JSON of a `data:` line, "[DONE]", or None (blank, comment, other field)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("data:"):
        return None
    payload = line[len("data:"):].strip()
    if payload == "[DONE]":
        return "[DONE]"
    return json.loads(payload)


def apply_event(sample: RequestSample, event: dict, t: float) -> None:
    """Fold one parsed SSE JSON message arriving at time t into the sample (vLLM's chunk rules)."""
    if event.get("error"):
        err = event["error"]
        sample.error = f"stream error: {err.get('message', err) if isinstance(err, dict) else err}"
    elif event.get("choices"):
        sample.chunk_times_s.append(t)
    elif usage := event.get("usage"):
        sample.output_tokens = usage.get("completion_tokens")
        sample.prompt_tokens = usage.get("prompt_tokens")


class OpenAIStreamClient:
    """Streams completions from an OpenAI-compatible server; one connection pool shared by all greenlets.

    `read_timeout_s` bounds each socket read (the gap between chunks), not the whole stream, so long
    generations are fine while a hung server still fails the request.
    """

    def __init__(self, base_url: str, model: str, api: str = "completions", max_connections: int = 256,
                 connect_timeout_s: float = 10.0, read_timeout_s: float = 300.0, api_key: str | None = None,
                 extra_body: dict | None = None):
        if api not in API_PATHS:
            raise ValueError(f"unknown api {api!r}; expected one of {sorted(API_PATHS)}")
        u = urlparse(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"base_url must look like http://host:port, got {base_url!r}")
        self.base_url, self.model, self.api = base_url, model, api
        self.path = u.path.rstrip("/").removesuffix("/v1") + API_PATHS[api]
        port = u.port or (443 if u.scheme == "https" else 80)
        self.http = HTTPClient(u.hostname, port=port, ssl=u.scheme == "https", concurrency=max_connections,
                               connection_timeout=connect_timeout_s, network_timeout=read_timeout_s)
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.extra_body = dict(extra_body or {})

    def payload(self, prompt: str, output_tokens: int) -> dict:
        """Request body asking for exactly `output_tokens` tokens (ignore_eos + min_tokens, vLLM extensions)."""
        body = {
            "model": self.model, "max_tokens": output_tokens, "min_tokens": output_tokens, "ignore_eos": True,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True},
        }
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            body["max_completion_tokens"] = body.pop("max_tokens")
        else:
            body["prompt"] = prompt
        body.update(self.extra_body)
        return body

    def stream(self, sample: RequestSample, now: Callable[[], float], prompt: str, output_tokens: int) -> None:
        """Send one request and record its timings into `sample` (times from `now()`, seconds)."""
        body = json.dumps(self.payload(prompt, output_tokens)).encode()
        sample.sent_s = now()
        resp = self.http.request("POST", self.path, body=body, headers=self.headers)
        try:
            sample.status = resp.status_code
            if resp.status_code != 200:
                text = resp.read()[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace")
                sample.error = f"HTTP {resp.status_code}: {text}"
                return
            while True:
                line = resp.readline(b"\n")
                if not line:
                    break
                event = parse_sse_line(line)
                if event is None:
                    continue
                if event == "[DONE]":
                    continue
                apply_event(sample, event, now())
            if not sample.chunk_times_s and not sample.error:
                sample.error = "stream ended without a chunk"
        finally:  # finished_s is the dispatcher's to set (left None when its drain kills us mid-stream)
            if not resp.message_complete:
                resp.__del__()  # geventhttpclient: closes the socket instead of returning it half-read
                resp._sock = None
            else:
                resp.release()

    def close(self) -> None:
        self.http.close()
