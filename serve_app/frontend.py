"""The OpenAI-compatible HTTP API over model endpoints: validates, authenticates, routes by `model`.

Routes: /v1/models, /v1/completions, /v1/chat/completions (SSE streaming or JSON), /health, /metrics, and the
auxiliary routes of vLLM's OpenAI server that clients and tools call (/tokenize, /detokenize, /version, /ping),
answered by vLLM's own serving objects behind the endpoint with vLLM's request/response schema.
Streams are relayed chunk by chunk (no batching: it would add up to the batching interval to TTFT/ITL, see
FACTS.md). An engine or replica failing mid-stream ends the stream with an OpenAI error event.

No Ray here: `ingress.py` hosts this in a Ray Serve deployment; tests run it on fake engines (`make_app`
takes how a request finds its `OpenAIFrontend`).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import IngressConfig
from .errors import ApiError, error_body
from .replies import Reply
from .requests import parse_body, parse_request, resolve_model

if TYPE_CHECKING:
    from .endpoints import ModelEndpoint, ReplyStream

logger = logging.getLogger(__name__)
_OPEN_PATHS = ("/health", "/metrics", "/ping", "/version")  # probes and scrapes without the API key
# /health must answer within 1 s even when a replica is dead (a call to it then waits for a replica that is
# not coming): it answers from a background probe of every model, run this often, each probe this long.
_HEALTH_PROBE_PERIOD_S = 0.5
_HEALTH_TIMEOUT_S = 0.5
_HEALTH_STALE_S = 3.0  # a probe result older than this (the loop is stuck) counts as unavailable
_CARD_TIMEOUT_S = 1.0

ErrorCounter = Callable[[str, int, str], None]  # (model name or "", HTTP status, OpenAI error type)


def _json_error(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


def _vllm_card(card: dict[str, Any]) -> dict[str, Any]:
    """A stand-in model card completed to vLLM's ModelCard shape (owned_by, permission list)."""
    from .vllm_compat import model_card_classes

    card_cls, permission_cls = model_card_classes()
    return card_cls(**card, permission=[permission_cls()]).model_dump()


def _sse_error(status: int, message: str) -> str:
    return f"data: {json.dumps(error_body(status, message))}\n\ndata: [DONE]\n\n"


def _no_metrics() -> str:
    return "# no metrics source configured\n"


class OpenAIFrontend:
    """The API of one ingress replica over its `endpoints` (served model name -> endpoint).

    `model_cards`: stand-in cards (id, created, root, max_model_len) until an endpoint reports vLLM's own.
    `api_key_sha256`: hex SHA-256 of the API key, None for no auth. `count_error` is called for every error
    reply; `scrape_metrics` returns the Prometheus text of /metrics (blocking: it runs in a thread).
    """

    def __init__(self, endpoints: dict[str, ModelEndpoint], model_cards: list[dict[str, Any]],
                 cfg: IngressConfig, api_key_sha256: str | None, count_error: ErrorCounter | None = None,
                 scrape_metrics: Callable[[], str] = _no_metrics):
        self.cfg = cfg
        self._endpoints = endpoints
        self._served = list(endpoints)
        self._cards = {c["id"]: _vllm_card(c) for c in model_cards}
        self._replica_cards: dict[str, dict[str, Any]] = {}  # vLLM's own cards, once a replica reported them
        self._key_sha = api_key_sha256
        self._count = count_error or (lambda model, status, etype: None)
        self._scrape_metrics = scrape_metrics
        self._health: tuple[float | None, dict[str, Any]] = (None, {})
        self._probe_task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the background health probe (needs the running event loop that serves requests)."""
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())

    # --- requests ------------------------------------------------------------------------------
    def _count_error(self, model: str, status: int, etype: str) -> None:
        self._count(model or "-", status, etype)

    def check_key(self, request: Request) -> None:
        if self._key_sha is None or request.url.path in _OPEN_PATHS:
            return
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or not hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), self._key_sha):
            raise ApiError(401, "missing or invalid API key: send `Authorization: Bearer <key>`")

    async def serve(self, kind: str, request: Request) -> Response:
        """Answer one API request of `kind` (see `requests.KINDS`): JSON, or an SSE stream relayed chunk by chunk."""
        model = ""
        try:
            self.check_key(request)
            ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if ctype not in ("application/json", ""):
                raise ApiError(415, f"Content-Type must be application/json, got {ctype!r}")
            data = parse_body(await request.body(), self.cfg.max_body_bytes, self.cfg.max_json_depth)
            model = resolve_model(data, self._served)
            parsed = parse_request(kind, data)
            stream = self._endpoints[model].generate(kind, parsed)
            try:
                head = await stream.__anext__()
            except Exception as exc:
                raise self._backend_error(exc, model) from None
            if not isinstance(head, Reply):
                raise TypeError(f"a reply stream must start with a Reply, got {type(head).__name__}")
        except ApiError as err:
            self._count_error(model, err.status, err.type)
            return _json_error(err)
        except Exception as exc:  # a bug of ours: still answer in the OpenAI shape, and say so in the log
            logger.exception("model %s: unexpected error", model)
            self._count_error(model, 500, "InternalServerError")
            return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}"), status_code=500)
        if head.is_stream:
            return StreamingResponse(self._relay(stream, model), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        if head.is_error:
            self._count_error(model, head.status, head.error_type)
        return JSONResponse(head.body, status_code=head.status, headers=head.headers or None)

    def _backend_error(self, exc: Exception, model: str) -> ApiError:
        if isinstance(exc, ApiError):  # the endpoint's own verdict (e.g. its queue is full)
            return exc
        logger.warning("model %s: request failed before the first chunk: %r", model, exc)
        return ApiError(503, f"model {model!r} is unavailable: {type(exc).__name__}", retry_after_s=1)

    async def _relay(self, stream: ReplyStream, model: str) -> AsyncIterator[str]:
        done = False
        try:
            async for chunk in stream:
                yield chunk
            done = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the replica died or its engine failed mid-stream
            logger.warning("model %s: stream broken: %r", model, exc)
            self._count_error(model, 503, "StreamBroken")
            done = True
            yield _sse_error(503, f"model {model!r} stream interrupted: {type(exc).__name__}; retry the request")
        finally:
            if not done:  # client disconnected: stop the generation, which aborts the engine request
                await stream.aclose()

    # --- models, health, metrics ---------------------------------------------------------------
    async def _card(self, name: str) -> dict[str, Any]:
        if name not in self._replica_cards:
            try:
                self._replica_cards[name] = await asyncio.wait_for(self._endpoints[name].model_card(),
                                                                   _CARD_TIMEOUT_S)
            except Exception as exc:  # replica starting or gone: the stand-in card, vLLM-shaped
                logger.info("model %s: no card from a replica yet (%r)", name, exc)
                return self._cards[name]
        return self._replica_cards[name]

    async def list_models(self, request: Request) -> Response:
        try:
            self.check_key(request)
        except ApiError as err:
            return _json_error(err)
        cards = await asyncio.gather(*(self._card(n) for n in self._served))
        return JSONResponse({"object": "list", "data": list(cards)})

    async def _probe(self, name: str) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._endpoints[name].stats(), _HEALTH_TIMEOUT_S)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"[:300] or "no answer"}

    async def _probe_loop(self) -> None:
        """Keep each model's last probe result, so /health never waits on a replica that may be dead."""
        while True:
            names = list(self._served)
            results = await asyncio.gather(*(self._probe(n) for n in names))
            self._health = (asyncio.get_running_loop().time(), dict(zip(names, results)))
            await asyncio.sleep(_HEALTH_PROBE_PERIOD_S)

    async def health(self) -> Response:
        """200 when every model has a replica whose engine answered the last probe (<= ~1 s old); 503 naming
        those that did not. Answers at once from the background probe's result."""
        self.start()  # a no-op unless the probe was never started (or died: it catches everything)
        stamp, results = self._health
        age_s = asyncio.get_running_loop().time() - stamp if stamp is not None else None
        if age_s is None or age_s > _HEALTH_STALE_S:  # first call, or the probe loop is stuck
            results = {n: {"error": "no probe result yet" if age_s is None else f"last probe {age_s:.1f} s old"}
                       for n in self._served}
        ok = all("error" not in r for r in results.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "models": results},
                            status_code=200 if ok else 503)

    async def metrics(self) -> Response:
        text = await asyncio.to_thread(self._scrape_metrics)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown paths (404) and wrong methods (405) answer in the OpenAI error shape too."""
    return JSONResponse(error_body(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


def make_app(get_frontend: Callable[[], Awaitable[OpenAIFrontend]]) -> FastAPI:
    """The FastAPI app of the API; each request gets its `OpenAIFrontend` from `get_frontend` (a FastAPI
    dependency: the Ray replica's own frontend in `ingress.py`, a test's frontend in tests)."""
    app = FastAPI(title="sparse24 OpenAI-compatible server", docs_url=None, redoc_url=None)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    frontend = Depends(get_frontend)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, fe: OpenAIFrontend = frontend) -> Response:
        return await fe.serve("chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request, fe: OpenAIFrontend = frontend) -> Response:
        return await fe.serve("completion", request)

    @app.post("/tokenize")
    async def tokenize(request: Request, fe: OpenAIFrontend = frontend) -> Response:
        """vLLM's /tokenize: `prompt` (completion style) or `messages` (chat style) -> token ids, count."""
        return await fe.serve("tokenize", request)

    @app.post("/detokenize")
    async def detokenize(request: Request, fe: OpenAIFrontend = frontend) -> Response:
        """vLLM's /detokenize: `tokens` -> `prompt` text."""
        return await fe.serve("detokenize", request)

    @app.get("/version")
    async def version() -> Response:
        from .vllm_compat import vllm_version

        return JSONResponse({"version": vllm_version()})

    @app.get("/ping")
    @app.post("/ping")
    async def ping(fe: OpenAIFrontend = frontend) -> Response:
        """vLLM's (SageMaker) ping: /health's status with an empty body."""
        return Response(status_code=(await fe.health()).status_code)

    @app.get("/v1/models")
    async def list_models(request: Request, fe: OpenAIFrontend = frontend) -> Response:
        return await fe.list_models(request)

    @app.get("/health")
    async def health(fe: OpenAIFrontend = frontend) -> Response:
        """200 when every model's engine answered the last background probe; 503 naming those that did not."""
        return await fe.health()

    @app.get("/metrics")
    async def metrics(fe: OpenAIFrontend = frontend) -> Response:
        """Prometheus text (in Ray: our and Ray Serve's series, from every alive node's metrics agent)."""
        return await fe.metrics()

    return app
