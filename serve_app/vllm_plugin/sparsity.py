"""Which compressed-tensors checkpoints this plugin takes over, and what their 2:4 layers must look like.

Pure (no vLLM import): the `quantization_config` dict of config.json in, a checked description out.
A checkpoint is ours when its `sparsity_config.sparsity_structure` is "2:4"; every other compressed-tensors
checkpoint goes to vLLM's own CompressedTensorsConfig untouched.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Storage formats of compressed-tensors' sparsity_config that we read (kernels/checkpoint documents both).
SPARSITY_FORMATS = ("dense", "sparse-24-bitmask")
SPARSITY_STRUCTURE_24 = "2:4"
WEIGHT_STRATEGIES = ("channel", "tensor")


class Sparse24Config(BaseModel):
    """The checked `sparsity_config` of a 2:4 checkpoint (extra upstream keys such as global_sparsity are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: str
    sparsity_structure: str = SPARSITY_STRUCTURE_24
    targets: tuple[str, ...] = Field(default=("Linear",))
    ignore: tuple[str, ...] = Field(default=())


def parse_sparsity_config(quant_config: dict[str, Any]) -> Sparse24Config | None:
    """Return the 2:4 sparsity description of a compressed-tensors quantization_config, or None if not 2:4.

    None means "not ours": no sparsity_config, or a structure other than 2:4 (vLLM itself then decides,
    which for sparse checkpoints means its own refusal). A 2:4 config in a format we cannot read raises.
    """
    sc = quant_config.get("sparsity_config")
    if not sc:
        return None
    if not isinstance(sc, dict):
        raise ValueError(f"quantization_config.sparsity_config must be a mapping, got {type(sc).__name__}")
    if str(sc.get("sparsity_structure")) != SPARSITY_STRUCTURE_24:
        return None
    fmt = sc.get("format")
    if fmt not in SPARSITY_FORMATS:
        raise ValueError(
            f"2:4 sparsity_config has format {fmt!r}; the sparse24 vLLM plugin reads {', '.join(SPARSITY_FORMATS)}"
        )
    clean = dict(sc)
    clean["targets"] = tuple(sc.get("targets") or ("Linear",))
    clean["ignore"] = tuple(sc.get("ignore") or ())
    return Sparse24Config.model_validate(clean)


def check_sparse_fp8_quant_args(layer_name: str, weights: Any, input_activations: Any) -> bool:
    """Check a 2:4 layer's compressed-tensors QuantizationArgs; return True for static per-tensor activations.

    Supported: weights FP8 (8-bit float) symmetric static per-channel or per-tensor; activations FP8
    dynamic per-token or static per-tensor. Raises ValueError naming the layer otherwise.
    """
    if weights is None:
        raise ValueError(
            f"{layer_name}: the checkpoint declares this layer 2:4 sparse but not FP8-quantized; the sparse24 "
            "plugin runs 2:4 layers with FP8 weights and FP8 activations only"
        )
    w_type = getattr(weights.type, "value", weights.type)
    w_strategy = getattr(weights.strategy, "value", weights.strategy)
    if weights.num_bits != 8 or w_type != "float" or not weights.symmetric or weights.dynamic:
        raise ValueError(
            f"{layer_name}: 2:4 weights must be FP8 (num_bits 8, type float, symmetric, static); got "
            f"num_bits={weights.num_bits} type={w_type} symmetric={weights.symmetric} dynamic={weights.dynamic}"
        )
    if w_strategy not in WEIGHT_STRATEGIES:
        raise ValueError(f"{layer_name}: 2:4 FP8 weight strategy {w_strategy!r} unsupported; expected {WEIGHT_STRATEGIES}")
    if input_activations is None:
        raise ValueError(
            f"{layer_name}: 2:4 FP8 layer without input_activations quantization (weight-only FP8) is unsupported"
        )
    a_type = getattr(input_activations.type, "value", input_activations.type)
    a_strategy = getattr(input_activations.strategy, "value", input_activations.strategy)
    if input_activations.num_bits != 8 or a_type != "float":
        raise ValueError(f"{layer_name}: input activations must be FP8 (num_bits 8, type float)")
    if a_strategy == "token" and input_activations.dynamic is True:
        return False
    if a_strategy == "tensor" and not input_activations.dynamic:
        return True
    raise ValueError(
        f"{layer_name}: input activations must be dynamic per-token or static per-tensor; got "
        f"strategy={a_strategy!r} dynamic={input_activations.dynamic!r}"
    )
