"""The OpenAI-compatible HTTP ingress as a Ray Serve deployment: a thin host for `frontend.OpenAIFrontend`.

Each replica builds one endpoint per served model: a `RemoteEndpoint` per `llm-<name>` deployment handle, or,
colocated (`ingress.colocate_engine`), one `LocalEndpoint` owning the engine in this process. The API itself
(routes, validation, SSE relay, health) is `frontend.py`'s, the same code for both modes.
"""
from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from .config import IngressConfig
from .endpoints import LocalEndpoint, ModelEndpoint, RemoteEndpoint
from .frontend import OpenAIFrontend, make_app
from .prometheus_relay import scrape_ray_metrics

_METRICS_SCRAPE_TIMEOUT_S = 5.0
# Exported series worth relaying at /metrics: ours (vllm_*, sparse24_*) and Ray Serve's request metrics.
_METRIC_PREFIXES = ("ray_vllm_", "ray_sparse24_", "ray_serve_")


async def _replica_frontend() -> OpenAIFrontend:
    """The frontend of the ingress replica serving this request (how Ray's own class-based routes find `self`)."""
    return serve.get_replica_context().servable_object.frontend


def _scrape_metrics() -> str:
    return scrape_ray_metrics(_METRIC_PREFIXES, _METRICS_SCRAPE_TIMEOUT_S)


app = make_app(_replica_frontend)


@serve.deployment
@serve.ingress(app)
class OpenAIIngress:
    """Constructed by `build_app` with one handle per served model, or (colocated) the one model's config."""

    async def __init__(self, models: dict[str, DeploymentHandle], model_cards: list[dict[str, Any]],
                       ingress: dict[str, Any], api_key_sha256: str | None,
                       local_model: dict[str, Any] | None = None, cache_dir: str | None = None):
        cfg = IngressConfig.model_validate(ingress)  # before an engine starts: a bad config fails at once
        if local_model is not None:  # colocated: this replica owns the engine (no handle hop per chunk)
            local = await LocalEndpoint.start(local_model, cache_dir)
            endpoints: dict[str, ModelEndpoint] = {local.name: local}
        else:
            endpoints = {name: RemoteEndpoint(name, h) for name, h in models.items()}
        self._endpoints = endpoints
        from ray.serve import metrics as serve_metrics

        errors = serve_metrics.Counter(
            "sparse24_ingress_errors_total", description="Ingress replies with an error status, by type.",
            tag_keys=("model_name", "error_type", "status_code"),
        )

        def count_error(model: str, status: int, etype: str) -> None:
            errors.inc(1, tags={"model_name": model, "error_type": etype, "status_code": str(status)})

        self.frontend = OpenAIFrontend(endpoints, model_cards, cfg, api_key_sha256, count_error=count_error,
                                       scrape_metrics=_scrape_metrics)
        self.frontend.start()

    async def check_health(self) -> None:
        """Ray Serve's replica health check (colocated: a dead engine makes Ray replace this replica)."""
        for endpoint in self._endpoints.values():
            await endpoint.check_health()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Colocated: the engine's ITL/TTFT window for the autoscaler (see ModelServer); otherwise empty."""
        stats: dict[str, float] = {}
        for endpoint in self._endpoints.values():
            stats.update(endpoint.autoscaling_stats())
        return stats
