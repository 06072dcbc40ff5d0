"""OpenAI-compatible HTTP ingress: validates, authenticates, routes by `model` to per-model engine deployments.

Routes: /v1/models, /v1/completions, /v1/chat/completions (SSE streaming or JSON), /health, /metrics, and the
auxiliary routes of vLLM's OpenAI server that clients and tools call (/tokenize, /detokenize, /version, /ping),
answered by vLLM's own serving objects in the model replica with vLLM's request/response schema.
Streams are relayed chunk by chunk from the model replica (no batching: it would add up to the batching
interval to TTFT/ITL, see FACTS.md). A replica dying mid-stream ends the stream with an OpenAI error event.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import IngressConfig
from .engine_host import REPLY_STREAM
from .prometheus_relay import scrape_ray_metrics
from .errors import ApiError, error_body
from .model_server import ModelServer
from .requests import parse_body, parse_request, resolve_model

logger = logging.getLogger(__name__)
_OPEN_PATHS = ("/health", "/metrics", "/ping", "/version")  # probes and scrapes without the API key
# /health must answer within 1 s even when a replica is dead (a call to it then waits for a replica that is
# not coming): it answers from a background probe of every model, run this often, each probe this long.
_HEALTH_PROBE_PERIOD_S = 0.5
_HEALTH_TIMEOUT_S = 0.5
_HEALTH_STALE_S = 3.0  # a probe result older than this (the loop is stuck) counts as unavailable
_CARD_TIMEOUT_S = 1.0
_METRICS_SCRAPE_TIMEOUT_S = 5.0
# Exported series worth relaying at /metrics: ours (vllm_*, sparse24_*) and Ray Serve's request metrics.
_METRIC_PREFIXES = ("ray_vllm_", "ray_sparse24_", "ray_serve_")

app = FastAPI(title="sparse24 OpenAI-compatible server", docs_url=None, redoc_url=None)


@app.exception_handler(StarletteHTTPException)
async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown paths (404) and wrong methods (405) answer in the OpenAI error shape too."""
    return JSONResponse(error_body(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _json_error(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


def _vllm_card(card: dict[str, Any]) -> dict[str, Any]:
    """A stand-in model card completed to vLLM's ModelCard shape (owned_by, permission list)."""
    from .vllm_compat import model_card_classes

    card_cls, permission_cls = model_card_classes()
    return card_cls(**card, permission=[permission_cls()]).model_dump()


def _sse_error(status: int, message: str) -> str:
    return f"data: {json.dumps(error_body(status, message))}\n\ndata: [DONE]\n\n"


@serve.deployment
@serve.ingress(app)
class OpenAIIngress:
    """Constructed by `build_app` with one streaming handle per served model."""

    async def __init__(self, models: dict[str, DeploymentHandle], model_cards: list[dict[str, Any]],
                       ingress: dict[str, Any], api_key_sha256: str | None,
                       local_model: dict[str, Any] | None = None, cache_dir: str | None = None):
        self.cfg = IngressConfig.model_validate(ingress)
        self._handles = {name: h.options(stream=True) for name, h in models.items()}
        self._stats_handles = models
        self._served = list(models)
        # Colocated: this replica owns the engine itself (no handle hop per chunk).
        self._local = await ModelServer.create(local_model, cache_dir) if local_model is not None else None
        if self._local is not None:
            self._served = [self._local.cfg.name]
        self._cards = {c["id"]: _vllm_card(c) for c in model_cards}
        self._replica_cards: dict[str, dict[str, Any]] = {}  # vLLM's own cards, once a replica reported them
        self._key_sha = api_key_sha256
        self._health: tuple[float | None, dict[str, Any]] = (None, {})
        self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())
        from ray.serve import metrics as serve_metrics

        self._errors = serve_metrics.Counter(
            "sparse24_ingress_errors_total", description="Ingress replies with an error status, by type.",
            tag_keys=("model_name", "error_type", "status_code"),
        )

    # --- helpers -------------------------------------------------------------------------------
    def _count_error(self, model: str, status: int, etype: str) -> None:
        self._errors.inc(1, tags={"model_name": model or "-", "error_type": etype, "status_code": str(status)})

    def _check_key(self, request: Request) -> None:
        if self._key_sha is None or request.url.path in _OPEN_PATHS:
            return
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token or not hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), self._key_sha):
            raise ApiError(401, "missing or invalid API key: send `Authorization: Bearer <key>`")

    async def _serve(self, kind: str, request: Request) -> Response:
        model = ""
        try:
            self._check_key(request)
            ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if ctype not in ("application/json", ""):
                raise ApiError(415, f"Content-Type must be application/json, got {ctype!r}")
            data = parse_body(await request.body(), self.cfg.max_body_bytes, self.cfg.max_json_depth)
            model = resolve_model(data, self._served)
            parsed = parse_request(kind, data)
            if self._local is not None:
                gen = self._local.generate(kind, parsed)
            else:
                gen = self._handles[model].generate.remote(kind, parsed)
            try:
                head = await gen.__anext__()
            except Exception as exc:
                raise self._backend_error(exc, model) from None
        except ApiError as err:
            self._count_error(model, err.status, err.type)
            return _json_error(err)
        except Exception as exc:  # a bug of ours: still answer in the OpenAI shape, and say so in the log
            logger.exception("model %s: unexpected error", model)
            self._count_error(model, 500, "InternalServerError")
            return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}"), status_code=500)
        if head == REPLY_STREAM:
            return StreamingResponse(self._relay(gen, model), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        _, status, body, *extra = head
        if status != 200:
            self._count_error(model, status, body["error"]["type"])
        return JSONResponse(body, status_code=status, headers=extra[0] if extra else None)

    def _backend_error(self, exc: Exception, model: str) -> ApiError:
        from ray.serve.exceptions import BackPressureError

        if isinstance(exc, BackPressureError):
            return ApiError(503, f"model {model!r} is overloaded (Ray Serve queue full); retry later",
                            retry_after_s=1)
        logger.warning("model %s: request failed before the first chunk: %r", model, exc)
        return ApiError(503, f"model {model!r} is unavailable: {type(exc).__name__}", retry_after_s=1)

    async def _relay(self, gen, model: str) -> AsyncIterator[str]:
        done = False
        try:
            async for chunk in gen:
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
                if self._local is not None:
                    await gen.aclose()
                else:
                    gen.cancel()

    # --- routes --------------------------------------------------------------------------------
    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._serve("chat", request)

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._serve("completion", request)

    @app.post("/tokenize")
    async def tokenize(self, request: Request) -> Response:
        """vLLM's /tokenize: `prompt` (completion style) or `messages` (chat style) -> token ids, count."""
        return await self._serve("tokenize", request)

    @app.post("/detokenize")
    async def detokenize(self, request: Request) -> Response:
        """vLLM's /detokenize: `tokens` -> `prompt` text."""
        return await self._serve("detokenize", request)

    @app.get("/version")
    async def version(self) -> Response:
        from .vllm_compat import vllm_version

        return JSONResponse({"version": vllm_version()})

    @app.get("/ping")
    @app.post("/ping")
    async def ping(self) -> Response:
        """vLLM's (SageMaker) ping: /health's status with an empty body."""
        return Response(status_code=(await self.health()).status_code)

    async def _card(self, name: str) -> dict[str, Any]:
        if name not in self._replica_cards:
            try:
                call = self._local.model_card() if self._local is not None else \
                    self._stats_handles[name].model_card.remote()
                self._replica_cards[name] = await asyncio.wait_for(call, _CARD_TIMEOUT_S)
            except Exception as exc:  # replica starting or gone: the stand-in card, vLLM-shaped
                logger.info("model %s: no card from a replica yet (%r)", name, exc)
                return self._cards[name]
        return self._replica_cards[name]

    @app.get("/v1/models")
    async def list_models(self, request: Request) -> Response:
        try:
            self._check_key(request)
        except ApiError as err:
            return _json_error(err)
        cards = await asyncio.gather(*(self._card(n) for n in self._served))
        return JSONResponse({"object": "list", "data": list(cards)})

    async def _probe(self, name: str) -> dict[str, Any]:
        try:
            call = self._local.stats() if self._local is not None else self._stats_handles[name].stats.remote()
            return await asyncio.wait_for(call, _HEALTH_TIMEOUT_S)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"[:300] or "no answer"}

    async def _probe_loop(self) -> None:
        """Keep each model's last probe result, so /health never waits on a replica that may be dead."""
        while True:
            names = list(self._served)
            results = await asyncio.gather(*(self._probe(n) for n in names))
            self._health = (asyncio.get_running_loop().time(), dict(zip(names, results)))
            await asyncio.sleep(_HEALTH_PROBE_PERIOD_S)

    @app.get("/health")
    async def health(self) -> Response:
        """200 when every model has a replica whose engine answered the last probe (<= ~1 s old); 503 naming
        those that did not. Answers at once from the background probe's result."""
        if self._probe_task.done():  # cannot happen (the loop catches everything), but never serve a dead probe
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())
        stamp, results = self._health
        age_s = asyncio.get_running_loop().time() - stamp if stamp is not None else None
        if age_s is None or age_s > _HEALTH_STALE_S:  # first call, or the probe loop is stuck
            results = {n: {"error": "no probe result yet" if age_s is None else f"last probe {age_s:.1f} s old"}
                       for n in self._served}
        ok = all("error" not in r for r in results.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "models": results},
                            status_code=200 if ok else 503)

    async def check_health(self) -> None:
        """Ray Serve's replica health check (colocated: a dead engine makes Ray replace this replica)."""
        if self._local is not None:
            await self._local.check_health()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Colocated: the engine's ITL/TTFT window for the autoscaler (see ModelServer)."""
        return self._local.record_autoscaling_stats() if self._local is not None else {}

    @app.get("/metrics")
    async def metrics(self) -> Response:
        """Prometheus text: our and Ray Serve's series, scraped from every alive node's Ray metrics agent."""
        text = await asyncio.to_thread(scrape_ray_metrics, _METRIC_PREFIXES, _METRICS_SCRAPE_TIMEOUT_S)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
