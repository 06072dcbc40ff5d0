"""Read a 2:4 sparse FP8 compressed-tensors checkpoint (formats `dense` and `sparse-24-bitmask`).

`load_sparse_layers(dir)` returns, per sparse layer, the fp8 weight in the logical 2:4 layout of
kernels/layout.py plus its scales. The rules it checks are format.py's; this module only finds the files and
tensors. Every problem is a CheckpointError naming the file and tensor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open

from .. import layout
from .format import (
    CheckpointError,
    SparseFp8Scheme,
    canonical_scale,
    check_scale_values,
    parse_quantization_config,
    per_channel_scale,
)


@dataclass
class SparseFp8Layer:
    """One 2:4 FP8 linear. values/meta: logical 2:4 layout; scale: [N, 1] fp32 (per-tensor expanded)."""

    name: str
    n: int
    k: int
    values: torch.Tensor
    meta: torch.Tensor
    scale: torch.Tensor
    input_scale: torch.Tensor | None = None  # static per-tensor activation scale, if the scheme has one

    def dense_fp8(self) -> torch.Tensor:
        return layout.decompress_2of4(self.values, self.meta)


def safetensors_files(model_dir: Path) -> list[Path]:
    """The checkpoint's safetensors files, in index order when there is an index."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(str(model_dir), "is not a directory")
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [model_dir / n for n in names]
        for f in files:
            if not f.is_file():
                raise CheckpointError(str(f), "listed in model.safetensors.index.json but missing")
        return files
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise CheckpointError(str(model_dir), "holds no *.safetensors files")
    return files


def read_scheme(model_dir: Path) -> SparseFp8Scheme:
    if not Path(model_dir).is_dir():
        raise CheckpointError(str(model_dir), "is not a directory")
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(str(path), "missing")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(str(path), f"is not valid JSON ({e})") from None
    return parse_quantization_config(config.get("quantization_config"), str(path))


class _TensorIndex:
    """name -> file, across shards, so a layer's tensors can live in different files."""

    def __init__(self, files: list[Path]):
        self.where: dict[str, Path] = {}
        for f in files:
            with safe_open(f, "pt") as sf:
                for name in sf.keys():
                    self.where[name] = f

    def get(self, name: str, layer_file: str) -> torch.Tensor:
        if name not in self.where:
            raise CheckpointError(layer_file, f"tensor {name} is missing")
        with safe_open(self.where[name], "pt") as sf:
            return sf.get_tensor(name)


class CheckpointReader:
    """Opens a checkpoint directory, checks its config, and loads its 2:4 layers one at a time."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self.scheme = read_scheme(self.model_dir)
        self._index = _TensorIndex(safetensors_files(self.model_dir))
        self.layer_names = [n for n in self.scheme.storage.layer_names(self._index.where)
                            if self.scheme.is_sparse_layer(n)]
        if not self.layer_names:
            raise CheckpointError(str(self.model_dir),
                                  f"no 2:4 layers found for sparsity format {self.scheme.sparsity_format!r}")

    def load(self, name: str) -> SparseFp8Layer:
        """Load and check one layer (module name, e.g. model.layers.0.mlp.down_proj)."""
        index, scheme = self._index, self.scheme
        storage = scheme.storage
        file = index.where[f"{name}.{storage.weight_tensors[0]}"].name
        label = f"{file}: {name}"
        get = lambda suffix: index.get(f"{name}.{suffix}", file)  # noqa: E731
        w = storage.read_weight(get, label)
        n, k = w.shape
        scale = per_channel_scale(get("weight_scale"), n, scheme.weight_strategy, f"{label}.weight_scale")
        input_scale = None
        if not scheme.activation_dynamic:
            input_scale = canonical_scale(get("input_scale"), "tensor", 1, f"{label}.input_scale").float()
            check_scale_values(input_scale, f"{label}.input_scale")
        values, meta = layout.compress_2of4(w)
        return SparseFp8Layer(name, n, k, values, meta, scale, input_scale)

    def __iter__(self) -> Iterator[SparseFp8Layer]:
        for name in self.layer_names:
            yield self.load(name)


def load_sparse_layers(model_dir: str | Path) -> dict[str, SparseFp8Layer]:
    """Every 2:4 layer of the checkpoint, checked, keyed by module name."""
    return {layer.name: layer for layer in CheckpointReader(model_dir)}
