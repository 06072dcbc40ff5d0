"""Read a 2:4 sparse FP8 compressed-tensors checkpoint (formats `dense` and `sparse-24-bitmask`).

`load_sparse_layers(dir)` returns, per sparse layer, the fp8 weight in the logical 2:4 layout of
kernels/layout.py plus its scales. Every problem is a CheckpointError naming the file and tensor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open

from .. import layout
from .bitmask import decode_bitmask, unpack_bitmask
from .config import CheckpointError, SparseFp8Scheme, parse_quantization_config


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


def _check_scale(scale: torch.Tensor, n: int, name: str, where: str, strategy: str) -> torch.Tensor:
    ok = scale.numel() == n if strategy == "channel" else scale.numel() == 1
    if not ok or scale.dim() > 2:
        expect = f"[{n}, 1]" if strategy == "channel" else "[1] (per-tensor)"
        raise CheckpointError(where, f"{name} has shape {tuple(scale.shape)}, expected {expect}")
    scale = scale.float().reshape(-1)
    if not bool(torch.isfinite(scale).all()):
        raise CheckpointError(where, f"{name} holds NaN or inf")
    if bool((scale <= 0).any()):
        raise CheckpointError(where, f"{name} holds zero or negative scales")
    return scale.expand(n).reshape(n, 1).contiguous()


def _layer_names(index: _TensorIndex, scheme: SparseFp8Scheme) -> list[str]:
    if scheme.sparsity_format == "sparse-24-bitmask":
        suffix = ".compressed"
        names = [t[: -len(suffix)] for t in index.where if t.endswith(suffix)]
    else:
        names = [t[: -len(".weight")] for t in index.where
                 if t.endswith(".weight") and t[: -len(".weight")] + ".weight_scale" in index.where]
    return sorted(n for n in names if scheme.is_sparse_layer(n))


def _load_weight(index: _TensorIndex, name: str, scheme: SparseFp8Scheme) -> tuple[torch.Tensor, str]:
    if scheme.sparsity_format == "dense":
        where = f"{index.where[name + '.weight'].name}: {name}.weight"
        w = index.get(f"{name}.weight", where)
        if w.dtype != torch.float8_e4m3fn or w.dim() != 2:
            raise CheckpointError(where, f"expected a 2-D float8_e4m3fn weight, got {w.dtype} {tuple(w.shape)}")
        return w, where
    file = index.where[f"{name}.compressed"].name
    compressed = index.get(f"{name}.compressed", file)
    bitmask = index.get(f"{name}.bitmask", file)
    shape = index.get(f"{name}.shape", file).reshape(-1).tolist()
    where = f"{file}: {name}"
    if len(shape) != 2:
        raise CheckpointError(f"{where}.shape", f"holds {shape}, expected the 2 dims (N, K)")
    n, k = int(shape[0]), int(shape[1])
    if compressed.dtype != torch.float8_e4m3fn or tuple(compressed.shape) != (n, k // 2) or k % 4:
        raise CheckpointError(f"{where}.compressed", f"is {compressed.dtype} {tuple(compressed.shape)}, expected "
                                                     f"float8_e4m3fn [{n}, {k // 2}] for shape ({n}, {k})")
    if bitmask.dtype != torch.uint8 or tuple(bitmask.shape) != (n, (k + 7) // 8):
        raise CheckpointError(f"{where}.bitmask", f"is {bitmask.dtype} {tuple(bitmask.shape)}, expected uint8 "
                                                  f"[{n}, {(k + 7) // 8}]")
    per_group = unpack_bitmask(bitmask, k).view(n, k // 4, 4).sum(-1)
    if bool((per_group != 2).any()):
        row = int((per_group != 2).any(-1).nonzero()[0])
        raise CheckpointError(f"{where}.bitmask", f"is not 2:4: row {row} has a group of 4 without exactly 2 kept")
    return decode_bitmask(compressed, bitmask, k), where


class CheckpointReader:
    """Opens a checkpoint directory, checks its config, and loads its 2:4 layers one at a time."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self.scheme = read_scheme(self.model_dir)
        self._index = _TensorIndex(safetensors_files(self.model_dir))
        self.layer_names = _layer_names(self._index, self.scheme)
        if not self.layer_names:
            raise CheckpointError(str(self.model_dir),
                                  f"no 2:4 layers found for sparsity format {self.scheme.sparsity_format!r}")

    def load(self, name: str) -> SparseFp8Layer:
        """Load and check one layer (module name, e.g. model.layers.0.mlp.down_proj)."""
        index, scheme = self._index, self.scheme
        w, where = _load_weight(index, name, scheme)
        n, k = w.shape
        if k % layout.K_ALIGNMENT:
            raise CheckpointError(where, f"K={k} is not a multiple of {layout.K_ALIGNMENT} required by the kernels")
        bad = layout.violating_groups(w)
        if bool(bad.any()):
            row = int(bad.any(-1).nonzero()[0])
            raise CheckpointError(where, f"is not 2:4: {int(bad.sum())} groups of 4 along K hold more than 2 "
                                         f"non-zeros (first in row {row})")
        scale = _check_scale(index.get(f"{name}.weight_scale", where), n, f"{name}.weight_scale", where,
                             scheme.weight_strategy)
        input_scale = None
        if not scheme.activation_dynamic:
            input_scale = _check_scale(index.get(f"{name}.input_scale", where), 1, f"{name}.input_scale", where,
                                       "tensor").reshape(1)
        values, meta = layout.compress_2of4(w)
        return SparseFp8Layer(name, n, k, values, meta, scale, input_scale)

    def __iter__(self) -> Iterator[SparseFp8Layer]:
        for name in self.layer_names:
            yield self.load(name)


def load_sparse_layers(model_dir: str | Path) -> dict[str, SparseFp8Layer]:
    """Every 2:4 layer of the checkpoint, checked, keyed by module name."""
    return {layer.name: layer for layer in CheckpointReader(model_dir)}
