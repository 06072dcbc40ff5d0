"""The `quantization_config` of a 2:4 sparse FP8 compressed-tensors checkpoint: build it and read it back.

Written with compressed-tensors' own config classes, in the layout of the published RedHatAI
Sparse-Llama-3.1-8B-*-2of4-FP8-dynamic models: weights FP8 symmetric static per-channel, input activations
FP8 dynamic per-token, `lm_head` ignored, `sparsity_config.sparsity_structure = "2:4"`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from compressed_tensors.config import SparsityCompressionConfig
from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme

SPARSITY_FORMATS = ("sparse-24-bitmask", "dense")
WEIGHT_STRATEGIES = ("channel", "tensor")
DEFAULT_IGNORE = ["lm_head"]


class CheckpointError(ValueError):
    """A checkpoint is malformed; the message names the file and tensor."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def build_quantization_config(
    sparsity_format: str | None, global_sparsity: float, compression_ratio: float, ignore: list[str] | None = None
) -> dict:
    """config.json's `quantization_config` for our checkpoints (a JSON-ready dict).

    `sparsity_format=None` writes a dense FP8-dynamic config (no `sparsity_config`): the layout of RedHatAI's
    dense `*-FP8-dynamic` models, which vLLM runs on its own FP8 path (the dense baseline of our benchmarks).
    """
    if sparsity_format is not None and sparsity_format not in SPARSITY_FORMATS:
        raise ValueError(f"unknown sparsity format {sparsity_format!r}; expected one of {SPARSITY_FORMATS}")
    ignore = list(ignore or DEFAULT_IGNORE)
    scheme = QuantizationScheme(
        targets=["Linear"],
        weights=QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True, dynamic=False,
                                 observer="minmax"),
        input_activations=QuantizationArgs(num_bits=8, type="float", strategy="token", symmetric=True,
                                           dynamic=True, observer=None),
    )
    quant = QuantizationConfig(
        config_groups={"group_0": scheme}, format="float-quantized", quantization_status="compressed",
        ignore=ignore, global_compression_ratio=compression_ratio,
    )
    out = quant.model_dump(mode="json", exclude_none=False)
    out["quant_method"] = "compressed-tensors"
    if sparsity_format is None:
        return out
    sparsity = SparsityCompressionConfig.load_from_registry(
        sparsity_format, targets=["Linear"], ignore=ignore, global_sparsity=global_sparsity,
        sparsity_structure="2:4",
    )
    out["sparsity_config"] = sparsity.model_dump(mode="json")
    return out


@dataclass
class SparseFp8Scheme:
    """What a checkpoint declares, checked: everything the loader and the vLLM plugin need to know."""

    sparsity_format: str
    weight_strategy: str  # "channel" | "tensor"
    activation_dynamic: bool  # True: per-token dynamic; False: static per-tensor `input_scale`
    sparse_targets: list[str] = field(default_factory=lambda: ["Linear"])
    sparse_ignore: list[str] = field(default_factory=list)
    quant_ignore: list[str] = field(default_factory=list)

    def is_sparse_layer(self, name: str) -> bool:
        """Whether the layer (module name, e.g. model.layers.0.mlp.down_proj) is declared 2:4."""
        if _matches(name, self.sparse_ignore) or _matches(name, self.quant_ignore):
            return False
        return _matches(name, self.sparse_targets, linear_matches=True)


def _matches(name: str, patterns: list[str], linear_matches: bool = False) -> bool:
    for p in patterns:
        if p == "Linear":
            if linear_matches:
                return True
        elif p.startswith("re:"):
            if re.match(p[3:], name):
                return True
        elif name == p or name.endswith("." + p):
            return True
    return False


def parse_quantization_config(qc: dict | None, where: str = "config.json") -> SparseFp8Scheme:
    """Validate a `quantization_config` dict; raise CheckpointError naming what is unsupported."""
    if not isinstance(qc, dict):
        raise CheckpointError(where, "has no quantization_config: not a compressed-tensors checkpoint")
    if qc.get("quant_method") != "compressed-tensors":
        raise CheckpointError(where, f"quant_method is {qc.get('quant_method')!r}, expected 'compressed-tensors'")
    sc = qc.get("sparsity_config")
    if not isinstance(sc, dict):
        raise CheckpointError(where, "quantization_config has no sparsity_config: not a 2:4 checkpoint")
    if sc.get("sparsity_structure") != "2:4":
        raise CheckpointError(where, f"sparsity_structure is {sc.get('sparsity_structure')!r}, expected '2:4'")
    fmt = sc.get("format")
    if fmt not in SPARSITY_FORMATS:
        raise CheckpointError(where, f"unknown sparsity format {fmt!r}; supported: {', '.join(SPARSITY_FORMATS)}")
    groups = qc.get("config_groups") or {}
    if len(groups) != 1:
        raise CheckpointError(where, f"expected exactly one config group, found {len(groups)}")
    group = next(iter(groups.values()))
    w, a = group.get("weights") or {}, group.get("input_activations") or {}
    if w.get("num_bits") != 8 or w.get("type") != "float":
        raise CheckpointError(where, f"weights must be 8-bit float, got num_bits={w.get('num_bits')} type={w.get('type')}")
    if w.get("strategy") not in WEIGHT_STRATEGIES or w.get("dynamic"):
        raise CheckpointError(where, f"weights must be static per-channel or per-tensor, got strategy={w.get('strategy')!r}")
    if a.get("num_bits") != 8 or a.get("type") != "float":
        raise CheckpointError(where, "input_activations must be 8-bit float")
    dynamic_token = a.get("strategy") == "token" and a.get("dynamic") is True
    static_tensor = a.get("strategy") == "tensor" and not a.get("dynamic")
    if not (dynamic_token or static_tensor):
        raise CheckpointError(where, f"input_activations must be dynamic per-token or static per-tensor, got "
                                     f"strategy={a.get('strategy')!r} dynamic={a.get('dynamic')!r}")
    return SparseFp8Scheme(
        sparsity_format=fmt, weight_strategy=w["strategy"], activation_dynamic=dynamic_token,
        sparse_targets=list(sc.get("targets") or ["Linear"]), sparse_ignore=list(sc.get("ignore") or []),
        quant_ignore=list(qc.get("ignore") or []),
    )
