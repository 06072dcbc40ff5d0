"""Build the `quantization_config` of a 2:4 sparse FP8 compressed-tensors checkpoint (the compressor's side).

Written with compressed-tensors' own config classes, in the layout of the published RedHatAI
Sparse-Llama-3.1-8B-*-2of4-FP8-dynamic models; what it declares (formats, quantization args, "2:4") comes from
format.py, which also reads it back (`parse_quantization_config`).
"""
from __future__ import annotations

from compressed_tensors.config import SparsityCompressionConfig
from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme

from .format import (
    DEFAULT_IGNORE,
    QUANT_METHOD,
    SPARSITY_STRUCTURE,
    WRITTEN_ACTIVATION_ARGS,
    WRITTEN_WEIGHT_ARGS,
    storage_format,
)


def build_quantization_config(
    sparsity_format: str | None, global_sparsity: float, compression_ratio: float, ignore: list[str] | None = None
) -> dict:
    """config.json's `quantization_config` for our checkpoints (a JSON-ready dict).

    `sparsity_format=None` writes a dense FP8-dynamic config (no `sparsity_config`): the layout of RedHatAI's
    dense `*-FP8-dynamic` models, which vLLM runs on its own FP8 path (the dense baseline of our benchmarks).
    """
    if sparsity_format is not None:
        storage_format(sparsity_format, "sparsity format")
    ignore = list(ignore or DEFAULT_IGNORE)
    scheme = QuantizationScheme(
        targets=["Linear"],
        weights=QuantizationArgs(**WRITTEN_WEIGHT_ARGS, observer="minmax"),
        input_activations=QuantizationArgs(**WRITTEN_ACTIVATION_ARGS, observer=None),
    )
    quant = QuantizationConfig(
        config_groups={"group_0": scheme}, format="float-quantized", quantization_status="compressed",
        ignore=ignore, global_compression_ratio=compression_ratio,
    )
    out = quant.model_dump(mode="json", exclude_none=False)
    out["quant_method"] = QUANT_METHOD
    if sparsity_format is None:
        return out
    sparsity = SparsityCompressionConfig.load_from_registry(
        sparsity_format, targets=["Linear"], ignore=ignore, global_sparsity=global_sparsity,
        sparsity_structure=SPARSITY_STRUCTURE,
    )
    out["sparsity_config"] = sparsity.model_dump(mode="json")
    return out
