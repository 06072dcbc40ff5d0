"""Ray Serve application hosting vLLM engines with the sparse-FP8 plugin (import as `sparse24.serve_app`).

Public names (imported lazily: Ray and vLLM load only when used):

    build_app                                   the Ray Serve application builder (`serve run` target, app.py)
    parse_app_config, ServeAppConfig, ConfigError   the validated application config (config.py)
    run_provenance                              machine/versions/date/commit record of a result (provenance.py)
"""
from ..kernels.lazy_exports import lazy_exports

_EXPORTS = {
    "build_app": "app", "parse_app_config": "config", "ServeAppConfig": "config", "ConfigError": "config",
    "run_provenance": "provenance",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
