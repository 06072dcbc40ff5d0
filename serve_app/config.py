"""Validated configuration of the serving application (the `args:` block of a Ray Serve config file).

`deploy/config.yaml` and `deploy/h100.yaml` are ordinary Ray Serve config files (`serve build` shape); their
`applications[].args` is parsed by `ServeAppConfig` when Ray builds the app, so a typo or a bad value fails
`serve run` at once with a message naming the field and the value, instead of a replica crash minutes later.
"""
from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..kernels.checkpoint.model_source import BUILTIN_SOURCES

# Names a model may have in the OpenAI `model` field and in deployment names.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ConfigError(ValueError):
    """The serving configuration is invalid; the message names the bad field and value."""


class EngineConfig(BaseModel):
    """vLLM engine knobs (a subset of `vllm.AsyncEngineArgs`, with bounds). Units in field names."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_model_len: int = Field(2048, ge=16, le=1_048_576, description="context length, tokens")
    max_num_seqs: int = Field(32, ge=1, le=4096, description="sequences decoded together per step")
    max_num_batched_tokens: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=0.99)
    cpu_kv_cache_gib: int = Field(
        1, ge=1, le=4096, description="VLLM_CPU_KVCACHE_SPACE (whole GiB) on CPU; vLLM's default takes ~all RAM"
    )
    enforce_eager: bool = False
    enable_prefix_caching: bool | None = None
    seed: int = 0
    chat_template: str | None = Field(None, description="Jinja chat template path or text; default: the model's")
    extra: dict[str, Any] = Field(default_factory=dict, description="passed to AsyncEngineArgs unchanged")


class AdmissionConfig(BaseModel):
    """Bounded admission per replica: beyond it a request is refused at once (429 + Retry-After)."""

    model_config = ConfigDict(extra="forbid")

    max_inflight: int = Field(64, ge=1, le=100_000, description="requests admitted to the engine at once")
    retry_after_s: int = Field(1, ge=0, le=3600, description="Retry-After header value on 429/503, seconds")


class DeploymentOptions(BaseModel):
    """Ray Serve options for one model's replicas (Ray's own `deployments:` overrides still apply on top)."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int | Literal["auto"] = 1
    num_cpus: float = Field(1.0, ge=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    # Serve's default (5) queues the 6th stream behind the others (FACTS.md): admission control is ours, so this
    # only has to be above AdmissionConfig.max_inflight for requests to reach the replica and get a clear answer.
    max_ongoing_requests: int = Field(256, ge=1)
    max_queued_requests: int = Field(256, ge=-1)
    graceful_shutdown_wait_loop_s: float = Field(1.0, gt=0.0)
    graceful_shutdown_timeout_s: float = Field(60.0, gt=0.0, description="drain limit for in-flight streams")
    health_check_period_s: float = Field(5.0, gt=0.0)
    health_check_timeout_s: float = Field(30.0, gt=0.0)
    autoscaling_config: dict[str, Any] | None = None
    env_vars: dict[str, str] = Field(default_factory=dict, description="runtime env for the replica process")


class ModelConfig(BaseModel):
    """One served model: its OpenAI name, where its weights come from, engine knobs and replica options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="name clients pass as `model`")
    source: str = Field(
        description="a built-in (tiny-dense, tiny-sparse24-fp8), a directory, a HF id, or ${ENV_VAR}"
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    deployment: DeploymentOptions = Field(default_factory=DeploymentOptions)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _MODEL_NAME.match(v):
            raise ValueError(f"model name {v!r} must match {_MODEL_NAME.pattern}")
        return v

    @field_validator("source")
    @classmethod
    def _expand_env(cls, v: str) -> str:
        m = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\}", v.strip())
        if not m:
            return v
        value = os.environ.get(m.group(1)) or m.group(2)
        if not value:
            raise ValueError(f"source {v!r}: environment variable {m.group(1)} is not set and has no default")
        return value

    @model_validator(mode="after")
    def _admission_fits(self) -> "ModelConfig":
        if self.deployment.max_ongoing_requests < self.admission.max_inflight:
            raise ValueError(
                f"deployment.max_ongoing_requests ({self.deployment.max_ongoing_requests}) must be >= "
                f"admission.max_inflight ({self.admission.max_inflight}), or Ray queues requests we would refuse"
            )
        return self


class IngressConfig(BaseModel):
    """The OpenAI-compatible HTTP ingress deployment."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(1, ge=1)
    # 0: on a 2-core node a 1-CPU ingress next to 1-CPU engine replicas may never be scheduled (FACTS.md).
    num_cpus: float = Field(0.0, ge=0.0)
    max_ongoing_requests: int = Field(1024, ge=1)
    api_key_env: str | None = Field(
        "SPARSE24_API_KEY", description="env var holding the API key; unset or empty variable: no auth"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies get 413")
    # OpenAI bodies nest ~4 levels (messages -> content parts); JSON-schema `response_format`/`tools` a few dozen.
    # Python's json and pydantic recurse per level (limit ~1000): deeper bodies get 400 before parsing.
    max_json_depth: int = Field(64, ge=8, le=512, description="deeper request bodies get 400, nesting levels")
    colocate_engine: bool = Field(
        False, description="host the (single) model's engine inside the ingress replicas: one Ray hop less per "
        "chunk; the model's deployment options (replicas, resources, autoscaling) then apply to the ingress",
    )
    # The ingress relays every stream, so it must drain at least as long as the model replicas do.
    graceful_shutdown_timeout_s: float = Field(60.0, gt=0.0, description="drain limit for relayed streams")


class ServeAppConfig(BaseModel):
    """Everything `build_app` needs: the models served side by side, and the ingress in front of them."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelConfig] = Field(min_length=1)
    ingress: IngressConfig = Field(default_factory=IngressConfig)
    cache_dir: str = Field(
        "~/.cache/sparse24/models", description="where built-in models are created on first start"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> "ServeAppConfig":
        names = [m.name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique, repeated: {dup}")
        if self.ingress.colocate_engine and len(self.models) != 1:
            raise ValueError(f"ingress.colocate_engine needs exactly one model, got {len(self.models)}")
        return self


def parse_app_config(args: dict[str, Any] | None) -> ServeAppConfig:
    """Validate the `args:` mapping of a Serve config; raise ConfigError listing every bad field and value."""
    try:
        return ServeAppConfig.model_validate(args or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<args>"
            value = err.get("input")
            shown = repr(value) if not isinstance(value, dict) else "{...}"
            lines.append(f"  args.{loc} = {shown}: {err['msg']}")
        raise ConfigError("invalid sparse24 serving config:\n" + "\n".join(lines)) from None
