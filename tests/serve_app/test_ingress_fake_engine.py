"""The ingress's HTTP API on a fake engine: no Ray cluster, no vLLM engine, a few seconds in all.

The app under test is the one Ray serves (`frontend.make_app` over `OpenAIFrontend`), with the colocated
endpoint (`LocalEndpoint` -> `ModelServer`: admission, abort accounting) and an `EngineFactory` that returns
`FakeEngine`. The real Ray + vLLM tests beside this file stay the truth; these make failures fast and local.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
from typing import Any

import httpx
import pytest

from sparse24.serve_app.config import IngressConfig
from sparse24.serve_app.endpoints import LocalEndpoint, RemoteEndpoint
from sparse24.serve_app.errors import ApiError
from sparse24.serve_app.frontend import OpenAIFrontend, make_app
from sparse24.serve_app.replies import Reply

pytestmark = pytest.mark.timeout(120)
MODEL = "fake"
KEY = "fake-key"


def _chunk(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj)}\n\n"


class FakeEngine:
    """A `ServingEngine` that answers each generation with `n` one-letter tokens, as vLLM's OpenAI layer would.

    `fail_after`: raise after that many stream chunks (a dying engine). `hold`: after the first chunk, wait
    for this event (a long generation). `fail_at_start`: raise before the first reply.
    """

    max_model_len = 2048

    def __init__(self, fail_after: int | None = None, hold: asyncio.Event | None = None,
                 fail_at_start: bool = False, card_fails: bool = False):
        self.fail_after, self.hold, self.fail_at_start, self.card_fails = fail_after, hold, fail_at_start, card_fails
        self.started = 0
        self.closed_early = 0
        self.unfinished = 0

    async def generate(self, kind: str, request: Any):
        if self.fail_at_start:
            raise RuntimeError("engine core died")
        if kind == "tokenize":
            yield Reply.json(200, {"count": 3, "tokens": [1, 2, 3], "max_model_len": self.max_model_len})
            return
        self.started += 1
        n = request.max_tokens or 4
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        if not request.stream:
            yield Reply.json(200, {"object": obj.removesuffix(".chunk"), "model": request.model,
                                   "choices": [{"index": 0, "text": "t" * n, "finish_reason": "length"}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}})
            return
        yield Reply.stream()
        self.unfinished += 1
        finished = False
        try:
            for i in range(n):
                if self.fail_after is not None and i == self.fail_after:
                    raise RuntimeError("engine core died")
                finish = "length" if i == n - 1 else None
                yield _chunk({"object": obj, "model": request.model,
                              "choices": [{"index": 0, "text": "t", "finish_reason": finish}]})
                if i == 0 and self.hold is not None:
                    await self.hold.wait()
            yield "data: [DONE]\n\n"
            finished = True
        finally:
            self.unfinished -= 1
            self.closed_early += not finished

    def unfinished_requests(self) -> int:
        return self.unfinished

    async def model_card(self) -> dict[str, Any]:
        if self.card_fails:
            raise RuntimeError("no replica yet")
        return {"id": MODEL, "object": "model", "owned_by": "vllm", "root": "/models/fake", "max_model_len": 2048}

    async def check_health(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


def _model(max_inflight: int) -> dict[str, Any]:
    return {"name": MODEL, "source": "tiny-dense", "admission": {"max_inflight": max_inflight, "retry_after_s": 3}}


class _Served:
    """One frontend over a colocated fake engine, its ASGI app, an httpx client and the errors it counted."""

    def __init__(self, engine: FakeEngine, key: str | None, max_inflight: int):
        self.engine, self.key, self.max_inflight = engine, key, max_inflight
        self.errors: list[tuple[str, int, str]] = []

    async def __aenter__(self) -> "_Served":
        async def factory(cfg, cache_dir, sink):
            return self.engine

        self.endpoint = await LocalEndpoint.start(_model(self.max_inflight), "/nonexistent", factory)
        cards = [{"id": MODEL, "created": 0, "root": "tiny-dense", "max_model_len": 2048}]
        key_sha = hashlib.sha256(self.key.encode()).hexdigest() if self.key else None
        self.frontend = OpenAIFrontend({MODEL: self.endpoint}, cards, IngressConfig(api_key_env=None), key_sha,
                                       count_error=lambda *e: self.errors.append(e))
        self.frontend.start()

        async def get_frontend():
            return self.frontend

        self.app = make_app(get_frontend)
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://fake",
                                        headers=headers, timeout=30)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        self.frontend._probe_task.cancel()

    async def stats(self) -> dict[str, Any]:
        return await self.endpoint.stats()


def _run(engine: FakeEngine, scenario, key: str | None = None, max_inflight: int = 8):
    async def main():
        async with _Served(engine, key, max_inflight) as served:
            return await scenario(served)

    return asyncio.run(main())


def _events(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


async def _settle(predicate, what: str, timeout_s: float = 5.0):
    """Let the loop run until predicate() holds (generator finalizers run a few iterations later)."""
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_streaming_completion_relays_sse_chunks_and_done():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 5,
                                                           "stream": True})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.text)
        assert events[-1] == "data: [DONE]" and len(events) == 6
        assert [json.loads(e[6:])["object"] for e in events[:-1]] == ["text_completion"] * 5
        await _settle(lambda: s.endpoint.server.inflight == 0, "the admission slot to be freed")
        assert (await s.stats())["aborted"] == 0 and s.errors == []

    _run(FakeEngine(), scenario)


def test_streaming_chat_chunks_are_chat_completion_chunks():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True})
        events = _events(r.text)
        assert events[-1] == "data: [DONE]"
        assert {json.loads(e[6:])["object"] for e in events[:-1]} == {"chat.completion.chunk"}

    _run(FakeEngine(), scenario)


def test_non_streaming_completion_is_json_and_not_counted_as_aborted():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 4})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["choices"][0]["text"] == "tttt" and body["usage"]["completion_tokens"] == 4
        await _settle(lambda: s.endpoint.server.inflight == 0, "the admission slot to be freed")
        assert (await s.stats())["aborted"] == 0

    _run(FakeEngine(), scenario)


def test_model_omitted_means_the_only_served_model():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert r.status_code == 200 and r.json()["model"] == MODEL

    _run(FakeEngine(), scenario)


def test_engine_error_mid_stream_ends_with_an_openai_error_event():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 5,
                                                           "stream": True})
        assert r.status_code == 200
        events = _events(r.text)
        assert len(events) == 2 + 2 and events[-1] == "data: [DONE]"
        err = json.loads(events[-2][6:])["error"]
        assert err["code"] == 503 and err["type"] == "ServiceUnavailableError" and "RuntimeError" in err["message"]
        assert s.errors == [(MODEL, 503, "StreamBroken")]

    _run(FakeEngine(fail_after=2), scenario)


def test_engine_error_before_the_first_chunk_is_503_with_retry_after():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "stream": True})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "ServiceUnavailableError"

    _run(FakeEngine(fail_at_start=True), scenario)


CHAT_MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("path,body,status", [
    ("/v1/chat/completions", b'{"model": "fake", "messages": [', 400),
    ("/v1/completions", b"[1, 2]", 400),
    ("/v1/completions", b"", 400),
    ("/v1/chat/completions", {"model": MODEL, "max_tokens": 4}, 400),
    ("/v1/chat/completions", {"model": MODEL, "messages": []}, 400),
    ("/v1/completions", {"model": MODEL, "max_tokens": 4}, 400),
    ("/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": "ten"}, 400),
    ("/v1/completions", {"model": MODEL, "prompt": "x", "stream": [1]}, 400),
    ("/v1/chat/completions", {"model": 123, "messages": CHAT_MSG}, 400),
    ("/v1/completions", {"model": "no-such-model", "prompt": "x"}, 404),
    ("/tokenize", {"model": "no-such-model", "prompt": "x"}, 404),
    ("/v1/chat/completions", b"[" * 10_000 + b"]" * 10_000, 400),
])
def test_bad_requests_are_openai_errors_and_never_reach_the_engine(path, body, status):
    engine = FakeEngine()

    async def scenario(s: _Served):
        if isinstance(body, bytes):
            r = await s.client.post(path, content=body, headers={"Content-Type": "application/json"})
        else:
            r = await s.client.post(path, json=body)
        assert r.status_code == status, r.text[:300]
        err = r.json()["error"]
        assert err["code"] == status and err["message"] and err["type"]
        assert [e[1:] for e in s.errors] == [(status, err["type"])]  # counted once

    _run(engine, scenario)
    assert engine.started == 0


def test_wrong_content_type_is_415_and_unknown_route_404_wrong_method_405():
    async def scenario(s: _Served):
        r = await s.client.post("/v1/completions", content=b"{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and r.json()["error"]["type"] == "UnsupportedMediaType"
        assert (await s.client.post("/v1/nope")).json()["error"]["code"] == 404
        assert (await s.client.get("/v1/completions")).json()["error"]["code"] == 405

    _run(FakeEngine(), scenario)


def test_api_key_is_required_except_on_probes():
    async def scenario(s: _Served):
        body = {"model": MODEL, "prompt": "x", "max_tokens": 2}
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = await s.client.post("/v1/completions", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["type"] == "AuthenticationError"
        assert (await s.client.get("/v1/models", headers={"Authorization": ""})).status_code == 401
        assert (await s.client.post("/v1/completions", json=body)).status_code == 200
        assert (await s.client.get("/version", headers={"Authorization": ""})).status_code == 200

    _run(FakeEngine(), scenario, key=KEY)


def test_models_lists_the_engine_card():
    async def scenario(s: _Served):
        r = await s.client.get("/v1/models")
        assert r.status_code == 200
        assert r.json() == {"object": "list", "data": [await s.engine.model_card()]}

    _run(FakeEngine(), scenario)


def test_models_falls_back_to_a_vllm_shaped_stand_in_card():
    async def scenario(s: _Served):
        (card,) = (await s.client.get("/v1/models")).json()["data"]
        assert card["id"] == MODEL and card["owned_by"] == "vllm" and card["root"] == "tiny-dense"
        assert [p["object"] for p in card["permission"]] == ["model_permission"]

    _run(FakeEngine(card_fails=True), scenario)


def test_tokenize_is_answered_by_the_engine():
    async def scenario(s: _Served):
        r = await s.client.post("/tokenize", json={"model": MODEL, "prompt": "hello"})
        assert r.status_code == 200 and r.json()["count"] == 3

    _run(FakeEngine(), scenario)


def test_health_and_ping_follow_the_engine_probe():
    async def scenario(s: _Served):
        async def healthy():
            r = await s.client.get("/health")
            return r.status_code == 200 and r

        for _ in range(100):
            if r := await healthy():
                break
            await asyncio.sleep(0.05)
        assert r and r.json()["models"][MODEL]["model"] == MODEL
        assert (await s.client.get("/ping")).status_code == 200

    _run(FakeEngine(), scenario)


def test_replica_at_capacity_answers_429_with_retry_after_at_once():
    hold = None

    async def scenario(s: _Served):
        body = {"model": MODEL, "prompt": "x", "max_tokens": 3, "stream": True}
        first = asyncio.ensure_future(s.client.post("/v1/completions", json=body))
        await _settle(lambda: s.engine.started == 1, "the first request to start")
        r = await s.client.post("/v1/completions", json=body)
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert r.json()["error"]["type"] == "RateLimitError"
        assert s.errors == [(MODEL, 429, "RateLimitError")]
        hold.set()
        assert _events((await first).text)[-1] == "data: [DONE]"

    async def main():
        nonlocal hold
        hold = asyncio.Event()
        async with _Served(FakeEngine(hold=hold), None, max_inflight=1) as served:
            await scenario(served)

    asyncio.run(main())


def test_client_disconnect_mid_stream_aborts_the_engine_request():
    async def main():
        hold = asyncio.Event()  # never set: the generation would run on
        engine = FakeEngine(hold=hold)
        async with _Served(engine, None, max_inflight=8) as s:
            body = json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 100, "stream": True}).encode()
            incoming = [{"type": "http.request", "body": body, "more_body": False}]
            first_chunk = asyncio.Event()

            async def receive():
                if incoming:
                    return incoming.pop(0)
                await first_chunk.wait()
                return {"type": "http.disconnect"}

            async def send(message):
                if message["type"] == "http.response.body" and message.get("body"):
                    first_chunk.set()

            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
                     "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
                     "server": ("fake", 80), "client": ("127.0.0.1", 1)}
            await asyncio.wait_for(s.app(scope, receive, send), 10)
            await _settle(lambda: engine.closed_early == 1 and s.endpoint.server.inflight == 0,
                          "the engine request to be aborted")
            assert (await s.stats())["aborted"] == 1

    asyncio.run(main())


class _FakeHandleStream:
    """Stands in for the DeploymentResponseGenerator of a streaming handle call."""

    def __init__(self, items, exc=None):
        self.items, self.exc, self.cancelled = list(items), exc, False

    async def __anext__(self):
        if self.exc is not None:
            raise self.exc
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)

    def cancel(self):
        self.cancelled = True


class _FakeHandle:
    """Stands in for a model deployment's DeploymentHandle: `.options(stream=True).generate.remote(...)`."""

    def __init__(self, gen: _FakeHandleStream):
        self.gen, self.calls = gen, []

    def options(self, stream: bool = False) -> "_FakeHandle":
        return self

    @property
    def generate(self):
        from types import SimpleNamespace

        return SimpleNamespace(remote=lambda kind, request: self.calls.append((kind, request)) or self.gen)


def test_remote_endpoint_maps_ray_backpressure_to_503_and_close_to_cancel():
    from ray.serve.exceptions import BackPressureError

    async def main():
        full = RemoteEndpoint(MODEL, _FakeHandle(_FakeHandleStream([], BackPressureError(10, 10))))
        with pytest.raises(ApiError) as err:
            await full.generate("completion", "parsed").__anext__()
        assert err.value.status == 503 and err.value.headers() == {"Retry-After": "1"}
        handle = _FakeHandle(_FakeHandleStream([Reply.stream(), "data: x\n\n"]))
        stream = RemoteEndpoint(MODEL, handle).generate("chat", "parsed")
        assert [item async for item in stream] == [Reply.stream(), "data: x\n\n"]
        assert handle.calls == [("chat", "parsed")] and not handle.gen.cancelled
        await stream.aclose()  # what the relay does when the client went away
        assert handle.gen.cancelled

    asyncio.run(main())


def test_reply_survives_pickling_as_ray_sends_it():
    for reply in (Reply.stream(), Reply.json(200, {"x": [1]}),
                  Reply.json(429, {"error": {"type": "RateLimitError"}}, {"Retry-After": "2"})):
        assert pickle.loads(pickle.dumps(reply)) == reply
    assert Reply.json(429, {"error": {"type": "RateLimitError"}}).error_type == "RateLimitError"
    assert Reply.stream().is_stream and not Reply.stream().is_error
