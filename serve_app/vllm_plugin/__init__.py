"""vLLM plugin entry point (group `vllm.general_plugins`, see pyproject.toml).

vLLM calls `register()` in every one of its processes (driver, engine core, workers).
"""
from __future__ import annotations


def register() -> None:
    from .cpu_features import enable_amx_tile_state

    enable_amx_tile_state()
