"""Ray Serve application hosting vLLM engines with the sparse-FP8 plugin (import as `sparse24.serve_app`).

Public names (imported lazily: Ray and vLLM load only when used):

    build_app                                   the Ray Serve application builder (`serve run` target, app.py)
    parse_app_config, ServeAppConfig, ConfigError   the validated application config (config.py)
    run_provenance                              machine/versions/date/commit record of a result (provenance.py)
"""
from importlib import import_module

_EXPORTS = {
    "build_app": "app", "parse_app_config": "config", "ServeAppConfig": "config", "ConfigError": "config",
    "run_provenance": "provenance",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
