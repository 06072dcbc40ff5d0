"""vLLM plugin entry point (group `vllm.general_plugins`, see pyproject.toml).

vLLM calls `register()` in every one of its processes (driver, engine core, workers). It makes AMX usable
(bf16 on CPU) and registers `Sparse24CompressedTensorsConfig` as the `compressed-tensors` method, so
current vLLM loads 2:4 sparse FP8 compressed-tensors checkpoints again (see config.py).
"""
from __future__ import annotations

QUANT_METHOD = "compressed-tensors"
_registered = False


def register() -> None:
    global _registered
    from .cpu_features import enable_amx_tile_state

    enable_amx_tile_state()
    if _registered:
        return
    from vllm.model_executor.layers.quantization import register_quantization_config

    from .config import Sparse24CompressedTensorsConfig

    register_quantization_config(QUANT_METHOD)(Sparse24CompressedTensorsConfig)
    _registered = True
