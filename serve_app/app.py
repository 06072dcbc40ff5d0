"""Ray Serve application builder: `import_path: sparse24.serve_app.app:build_app` in deploy/*.yaml.

Graph: HTTP proxy -> `OpenAIIngress` (validation, auth, routing by `model`) -> one `llm-<name>` deployment per
served model (replicas own a vLLM engine each). Deployment names are stable, so Ray's own `deployments:`
section of the config file can override replicas/resources per model.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Any

from ray.serve import Application

from .config import ModelConfig, ServeAppConfig, parse_app_config
from .ingress import OpenAIIngress
from .model_server import ModelServerDeployment

INGRESS_NAME = "OpenAIIngress"


def model_deployment_name(model_name: str) -> str:
    """Ray Serve deployment name of a served model (`llm-` + name, `:` and `/` made safe)."""
    return "llm-" + re.sub(r"[^A-Za-z0-9._-]", "-", model_name)


def _replica_options(m: ModelConfig, name: str) -> dict[str, Any]:
    d = m.deployment
    env = dict(d.env_vars)
    if d.num_gpus == 0:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(m.engine.cpu_kv_cache_gib))
    options: dict[str, Any] = dict(
        name=name,
        max_ongoing_requests=d.max_ongoing_requests,
        max_queued_requests=d.max_queued_requests,
        graceful_shutdown_wait_loop_s=d.graceful_shutdown_wait_loop_s,
        graceful_shutdown_timeout_s=d.graceful_shutdown_timeout_s,
        health_check_period_s=d.health_check_period_s,
        health_check_timeout_s=d.health_check_timeout_s,
        ray_actor_options={"num_cpus": d.num_cpus, "num_gpus": d.num_gpus, "runtime_env": {"env_vars": env}},
    )
    if d.autoscaling_config is not None:
        options["autoscaling_config"] = d.autoscaling_config
    else:
        options["num_replicas"] = d.num_replicas
    return options


def _model_deployment(m: ModelConfig, cfg: ServeAppConfig):
    options = _replica_options(m, model_deployment_name(m.name))
    return ModelServerDeployment.options(**options).bind(m.model_dump(), cfg.cache_dir)


def _api_key_sha256(env_name: str | None) -> str | None:
    key = os.environ.get(env_name, "") if env_name else ""
    return hashlib.sha256(key.encode()).hexdigest() if key else None


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Build the Serve application from the config file's `args:` (validated; ConfigError names bad fields)."""
    cfg = parse_app_config(args)
    created = int(time.time())
    # Stand-in cards until a replica reports vLLM's own (root = the resolved model path); the ingress completes
    # them to vLLM's ModelCard shape (owned_by "vllm", permission list).
    cards = [{"id": m.name, "created": created, "root": m.source, "max_model_len": m.engine.max_model_len}
             for m in cfg.models]
    ing = cfg.ingress
    key = _api_key_sha256(ing.api_key_env)
    if ing.colocate_engine:  # one deployment: the ingress replicas own the engines (one Ray hop less per chunk)
        (m,) = cfg.models
        options = _replica_options(m, INGRESS_NAME)
        return OpenAIIngress.options(**options).bind({}, cards, ing.model_dump(), key, m.model_dump(), cfg.cache_dir)
    handles = {m.name: _model_deployment(m, cfg) for m in cfg.models}
    return OpenAIIngress.options(
        name=INGRESS_NAME, num_replicas=ing.num_replicas, max_ongoing_requests=ing.max_ongoing_requests,
        graceful_shutdown_timeout_s=ing.graceful_shutdown_timeout_s, ray_actor_options={"num_cpus": ing.num_cpus},
    ).bind(handles, cards, ing.model_dump(), key)
