"""`Sparse24CompressedTensorsConfig`: registered as vLLM's `compressed-tensors` quantization method.

A checkpoint whose sparsity_config says 2:4 gets this config: its 2:4 linear layers run
`CompressedTensorsSparse24Fp8`, everything else (lm_head, ignored or non-sparse layers, KV cache, ...)
keeps vLLM's behaviour. Any other compressed-tensors checkpoint gets vLLM's own CompressedTensorsConfig
object, built by vLLM's own code: `from_config` returns it unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from vllm.model_executor.layers.linear import LinearBase
from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
    CompressedTensorsConfig,
    CompressedTensorsLinearMethod,
)
from vllm.model_executor.layers.quantization.compressed_tensors.utils import (
    find_matched_target,
    should_ignore_layer,
)

from ...kernels.checkpoint.format import Sparse24Config, parse_sparsity_config

from .scheme import CompressedTensorsSparse24Fp8


class Sparse24CompressedTensorsConfig(CompressedTensorsConfig):
    """vLLM's CompressedTensorsConfig plus the 2:4 sparse FP8 layers that upstream removed in v0.19."""

    sparse24: Sparse24Config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CompressedTensorsConfig:
        sparse = parse_sparsity_config(config)
        if sparse is None:
            return CompressedTensorsConfig.from_config(config)  # not 2:4: vLLM's own object, unchanged
        # vLLM's parser refuses any sparsity_config; it reads the quantization part of the dict unchanged.
        without_sparsity = {k: v for k, v in config.items() if k != "sparsity_config"}
        obj = super().from_config(without_sparsity)
        obj.sparse24 = sparse
        obj.config = config
        if obj.transform_config is not None:
            raise ValueError("2:4 sparse checkpoints with a compressed-tensors transform_config are not supported")
        return obj

    def apply_vllm_mapper(self, hf_to_vllm_mapper) -> None:
        super().apply_vllm_mapper(hf_to_vllm_mapper)

        def _map(target: str) -> str | None:
            is_layer_path = "." in target and not target.startswith("re:")
            return hf_to_vllm_mapper._map_name(target) if is_layer_path else target

        self.sparse24 = self.sparse24.model_copy(update={
            "targets": tuple(t for t in map(_map, self.sparse24.targets) if t is not None),
            "ignore": tuple(t for t in map(_map, self.sparse24.ignore) if t is not None),
        })

    def _is_sparse24_layer(self, layer: torch.nn.Module, prefix: str) -> bool:
        if should_ignore_layer(prefix, ignore=self.sparse24.ignore, fused_mapping=self.packed_modules_mapping):
            return False
        target = find_matched_target(
            layer_name=prefix, module=layer, targets=self.sparse24.targets, fused_mapping=self.packed_modules_mapping
        )
        return target is not None

    def _shard_names(self, prefix: str) -> list[str]:
        head, _, last = prefix.rpartition(".")
        parts = self.packed_modules_mapping.get(last)
        return [f"{head}.{p}" if head else p for p in parts] if parts else [prefix]

    def get_quant_method(self, layer: torch.nn.Module, prefix: str):
        if isinstance(layer, LinearBase) and self._is_sparse24_layer(layer, prefix):
            quant = self.get_scheme_dict(layer, layer_name=prefix) or {}
            layer.scheme = CompressedTensorsSparse24Fp8(
                layer_name=prefix,
                sparsity_format=self.sparse24.format,
                weight_quant=quant.get("weights"),
                input_quant=quant.get("input_activations"),
                shard_names=self._shard_names(prefix),
            )
            return CompressedTensorsLinearMethod(self)
        return super().get_quant_method(layer, prefix)
