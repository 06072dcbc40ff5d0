"""Checks of a Ray Serve config (the `serve build` shape) beyond Ray's own schema.

Ray's `ServeDeploySchema` validates structure and types offline but leaves `autoscaling_config`
a free dict and does not bound its values; a misspelled `policy` key is silently ignored and the
default policy runs. These checks close that gap. Pure functions: dict in, list of error strings out.
Units: seconds for delays/intervals, replicas for counts.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

# Bounds, with why:
MIN_REPLICAS_FLOOR = 1          # LLM cold start takes minutes and the ITL policy needs >= 1 replica to measure
MAX_REPLICAS_CEILING = 64       # a typo guard: far above any node pool this app is sized for
MAX_UPSCALE_DELAY_S = 600.0     # Ray's default is 30 s; minutes of breach before reacting defeats an SLA
MAX_DOWNSCALE_DELAY_S = 3600.0  # Ray's default is 600 s
MAX_METRICS_INTERVAL_S = 60.0   # Ray's default is 10 s; the policy runs every ~0.1 s on these samples
FACTOR_RANGE = (0.0, 4.0)       # (exclusive, inclusive) smoothing/scaling factors; Ray's default 1.0
POLICY_KEYS = {"policy_function", "policy_kwargs"}  # Ray 2.60 AutoscalingPolicy fields
_FACTORS = ("smoothing_factor", "upscale_smoothing_factor", "downscale_smoothing_factor",
            "upscaling_factor", "downscaling_factor")


def serve_schema_errors(cfg: dict) -> list[str]:
    """Ray Serve's own schema (`ServeDeploySchema`), no cluster needed."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema
    try:
        ServeDeploySchema.model_validate(cfg)
    except ValidationError as e:
        return [f"ServeDeploySchema: {'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r:.80})"
                for err in e.errors()]
    return []


def iter_autoscaling_configs(cfg: dict) -> Iterator[tuple[str, dict, dict]]:
    """(where, autoscaling_config, enclosing deployment dict) for every autoscaling_config in the
    config: under applications[].deployments[] and anywhere under applications[].args (ray.serve.llm
    puts it in args.llm_configs[].deployment_config)."""
    def walk(node: Any, where: str, parent: dict | None):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "autoscaling_config" and isinstance(v, dict):
                    yield f"{where}.{k}", v, node
                else:
                    yield from walk(v, f"{where}.{k}", node)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                label = v.get("name", i) if isinstance(v, dict) else i
                yield from walk(v, f"{where}[{label}]", parent)
    for app in cfg.get("applications") or []:
        yield from walk(app, f"applications[{app.get('name', '?')}]", None)


def _num(d: dict, key: str, default: float) -> float:
    v = d.get(key, default)
    return default if v is None else float(v)


def autoscaling_errors(cfg: dict) -> list[str]:
    """Bounds and consistency of every autoscaling_config (see the constants above)."""
    from pydantic import ValidationError
    from ray.serve.config import AutoscalingConfig
    errors: list[str] = []
    for where, ac, dep in iter_autoscaling_configs(cfg):
        try:
            AutoscalingConfig.model_validate({k: v for k, v in ac.items() if k != "policy"})
        except ValidationError as e:
            errors += [f"{'.'.join([where, *map(str, x['loc'])])}: {x['msg']}" for x in e.errors()]
            continue
        lo, hi = _num(ac, "min_replicas", 1), _num(ac, "max_replicas", 1)
        if lo < MIN_REPLICAS_FLOOR:
            errors.append(f"{where}.min_replicas={lo:g}: must be >= {MIN_REPLICAS_FLOOR} for an LLM deployment")
        if hi < lo:
            errors.append(f"{where}.max_replicas={hi:g} < min_replicas={lo:g}")
        if hi > MAX_REPLICAS_CEILING:
            errors.append(f"{where}.max_replicas={hi:g}: above {MAX_REPLICAS_CEILING}")
        if ac.get("initial_replicas") is not None and not lo <= ac["initial_replicas"] <= hi:
            errors.append(f"{where}.initial_replicas={ac['initial_replicas']}: not within [{lo:g}, {hi:g}]")
        target = ac.get("target_ongoing_requests")
        max_ongoing = dep.get("max_ongoing_requests") if isinstance(dep, dict) else None
        if target is not None and max_ongoing is not None and float(target) > float(max_ongoing):
            errors.append(f"{where}.target_ongoing_requests={target}: above max_ongoing_requests={max_ongoing}, "
                          "so a replica can never reach it and the default policy never scales up")
        up, down = _num(ac, "upscale_delay_s", 30.0), _num(ac, "downscale_delay_s", 600.0)
        if not 0 <= up <= MAX_UPSCALE_DELAY_S:
            errors.append(f"{where}.upscale_delay_s={up:g}: expected 0..{MAX_UPSCALE_DELAY_S:g} s")
        if not 0 <= down <= MAX_DOWNSCALE_DELAY_S:
            errors.append(f"{where}.downscale_delay_s={down:g}: expected 0..{MAX_DOWNSCALE_DELAY_S:g} s")
        if down < up:
            errors.append(f"{where}.downscale_delay_s={down:g} < upscale_delay_s={up:g}: replicas would flap")
        interval, look_back = _num(ac, "metrics_interval_s", 10.0), _num(ac, "look_back_period_s", 30.0)
        if not 0 < interval <= MAX_METRICS_INTERVAL_S:
            errors.append(f"{where}.metrics_interval_s={interval:g}: expected (0, {MAX_METRICS_INTERVAL_S:g}] s")
        if look_back < interval:
            errors.append(f"{where}.look_back_period_s={look_back:g} < metrics_interval_s={interval:g}")
        for f in _FACTORS:
            if ac.get(f) is not None and not FACTOR_RANGE[0] < float(ac[f]) <= FACTOR_RANGE[1]:
                errors.append(f"{where}.{f}={ac[f]}: expected in ({FACTOR_RANGE[0]:g}, {FACTOR_RANGE[1]:g}]")
        if "policy" in ac:
            errors += policy_errors(f"{where}.policy", ac["policy"])
    return errors


def policy_errors(where: str, policy: Any) -> list[str]:
    """A custom policy must be spelled exactly as Ray reads it, importable, and its kwargs valid."""
    if not isinstance(policy, dict):
        return [f"{where}: expected a mapping with {sorted(POLICY_KEYS)}, got {policy!r}"]
    unknown = set(policy) - POLICY_KEYS
    if unknown:
        return [(f"{where}: unknown key(s) {sorted(unknown)} (Ray ignores them silently and runs its "
                 f"default policy); expected {sorted(POLICY_KEYS)}")]
    fn = policy.get("policy_function")
    if not isinstance(fn, str) or ":" not in fn:
        return [f"{where}.policy_function={fn!r}: expected 'package.module:Name'"]
    module, _, attr = fn.partition(":")
    if not module.startswith("sparse24."):
        return []  # third-party policy: importable only in the image
    try:
        target = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        return [f"{where}.policy_function={fn!r}: cannot import ({e})"]
    model = getattr(target, "config_model", None) or _autoscaler_config_model(module)
    if model is not None:
        from pydantic import ValidationError
        try:
            model.model_validate(policy.get("policy_kwargs") or {})
        except ValidationError as e:
            return [f"{where}.policy_kwargs.{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
    return []


def _autoscaler_config_model(module: str):
    """The pydantic model of our ITL-SLA policy's kwargs (serve_app/autoscaler/config.py)."""
    if ".autoscaler" not in module:
        return None
    try:
        from sparse24.serve_app.autoscaler.config import ItlSlaPolicyConfig
    except ImportError:
        return None
    return ItlSlaPolicyConfig


def replica_demand(cfg: dict) -> dict[str, float]:
    """What the config's deployments ask Ray for at max replicas, from explicit settings only:
    {'CPU': total, 'GPU': total, 'CPU_per_replica': largest, 'GPU_per_replica': largest}.
    Reads Ray's `deployments[]` (ray_actor_options, placement_group_bundles) and our app's
    `args.models[].deployment` / `args.ingress` (num_cpus, num_gpus)."""
    out = {"CPU": 0.0, "GPU": 0.0, "CPU_per_replica": 0.0, "GPU_per_replica": 0.0}
    for app in cfg.get("applications") or []:
        for dep in _deployment_like(app):
            ac = dep.get("autoscaling_config") or {}
            n = ac.get("max_replicas") or dep.get("num_replicas") or 1
            n = float(n) if not isinstance(n, str) else 1.0
            for res, key in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
                per = float(((dep.get("ray_actor_options") or {}).get(key)) or dep.get(key) or 0)
                per = max(per, sum(float(b.get(res, 0)) for b in dep.get("placement_group_bundles") or []))
                out[res] += per * n
                out[f"{res}_per_replica"] = max(out[f"{res}_per_replica"], per)
    return out


ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def env_refs(text: str) -> dict[str, bool]:
    """`${VAR}` / `${VAR:-default}` references in a config text: {VAR: has_default}."""
    out: dict[str, bool] = {}
    for m in ENV_REF.finditer(text):
        out[m.group(1)] = out.get(m.group(1), False) or m.group(2) is not None
    return out


def app_args_errors(cfg: dict, env: dict[str, str]) -> list[str]:
    """Our application's own `args` model (sparse24.serve_app.config.ServeAppConfig), parsed the way
    the replica will parse it at start, with `env` standing in for the pod's environment."""
    import os
    errors: list[str] = []
    for app in cfg.get("applications") or []:
        if not str(app.get("import_path", "")).startswith("sparse24.serve_app"):
            continue
        try:
            from sparse24.serve_app.config import ServeAppConfig
        except ImportError as e:
            return [f"applications[{app.get('name')}]: cannot import sparse24.serve_app.config ({e})"]
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            ServeAppConfig.model_validate(app.get("args") or {})
        except ValueError as e:
            errors.append(f"applications[{app.get('name')}].args: {e}")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return errors


def _deployment_like(node: Any) -> Iterator[dict]:
    """Dicts that carry replica settings: deployments[] items and ray.serve.llm deployment_config."""
    if isinstance(node, dict):
        if any(k in node for k in ("autoscaling_config", "ray_actor_options", "num_replicas")):
            yield node
        for k, v in node.items():
            if k not in ("autoscaling_config", "ray_actor_options"):
                yield from _deployment_like(v)
    elif isinstance(node, list):
        for v in node:
            yield from _deployment_like(v)
