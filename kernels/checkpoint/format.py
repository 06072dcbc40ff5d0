"""The 2:4 sparse FP8 checkpoint format: every rule of what such a checkpoint may hold, defined once.

Storage formats (compressed-tensors `sparsity_config.format`), one class each, per layer prefix P:
    dense              P.weight [N, K] fp8 e4m3, 2:4 zeros stored (the RedHatAI Sparse-Llama *-2of4-FP8-dynamic
                       layout; with no sparsity_config it is also the dense FP8-dynamic baseline)
    sparse-24-bitmask  P.compressed [N, K/2] fp8, P.bitmask [N, ceil(K/8)] uint8, P.shape [2, 1] int64 (bitmask.py)
Shared by both: P.weight_scale ([N, 1] per channel or one value per tensor, finite and > 0), P.input_scale (one
value, static per-tensor activations only) and the quantization args (FP8 symmetric static weights per channel
or tensor; FP8 activations dynamic per token or static per tensor).

The compressor writes with it (compress.py, config.py), the loader and `inspect` read with it (loader.py), and
the vLLM scheme registers and checks its parameters with it (serve_app/vllm_plugin/scheme.py). Pure: torch and
pydantic only (no compressed-tensors, no vLLM), so it also runs on the GPU benchmark machine. Every problem is
a CheckpointError "<file or tensor>: <problem>".
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import torch
from pydantic import BaseModel, ConfigDict

from .. import layout
from .bitmask import decode_bitmask, encode_bitmask, unpack_bitmask

FP8 = torch.float8_e4m3fn
QUANT_METHOD = "compressed-tensors"
SPARSITY_STRUCTURE = "2:4"
WEIGHT_STRATEGIES = ("channel", "tensor")
DEFAULT_IGNORE = ["lm_head"]
# What our compressor writes (the RedHatAI layout); `check_quant_args` accepts a superset.
WRITTEN_WEIGHT_ARGS = {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False}
WRITTEN_ACTIVATION_ARGS = {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True, "dynamic": True}

# Maps a row of a layer's weight to (label naming the layer or fused shard, row inside it): the vLLM scheme
# sees fused qkv/gate_up layers but must name the checkpoint layer a bad row came from.
Locate = Callable[[int], tuple[str, int]]


class CheckpointError(ValueError):
    """A checkpoint is malformed; the message names the file and tensor."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def _at(label: str) -> Locate:
    return lambda row: (label, row)


# ----------------------------------------------------------------------------------------- quantization args
def _arg(args: Any, name: str, default: Any = None) -> Any:
    """A field of QuantizationArgs given as a JSON dict (config.json) or a compressed-tensors object (vLLM)."""
    value = args.get(name, default) if isinstance(args, dict) else getattr(args, name, default)
    return getattr(value, "value", value)  # compressed-tensors enums -> their strings


def check_quant_args(where: str, weights: Any, input_activations: Any) -> bool:
    """Check a 2:4 layer's quantization args; True for static per-tensor activations (an input_scale per layer),
    False for dynamic per-token. Missing `symmetric`/`dynamic` take compressed-tensors' defaults (True/False)."""
    if not weights:
        raise CheckpointError(where, "declares 2:4 sparsity but no FP8 weight quantization; the sparse24 path runs "
                                     "2:4 layers with FP8 weights and FP8 activations only")
    bits, kind, sym, dyn = (_arg(weights, f, d) for f, d in
                            (("num_bits", None), ("type", None), ("symmetric", True), ("dynamic", False)))
    if bits != 8 or kind != "float" or not sym or dyn:
        raise CheckpointError(where, f"2:4 weights must be FP8 (num_bits 8, type float, symmetric, static); got "
                                     f"num_bits={bits} type={kind} symmetric={sym} dynamic={dyn}")
    strategy = _arg(weights, "strategy")
    if strategy not in WEIGHT_STRATEGIES:
        raise CheckpointError(where, f"2:4 FP8 weight strategy {strategy!r} unsupported; expected one of "
                                     f"{WEIGHT_STRATEGIES}")
    if not input_activations:
        raise CheckpointError(where, "2:4 FP8 layer without input_activations quantization (weight-only FP8) is "
                                     "unsupported")
    bits, kind = _arg(input_activations, "num_bits"), _arg(input_activations, "type")
    if bits != 8 or kind != "float":
        raise CheckpointError(where, f"input_activations must be FP8 (num_bits 8, type float); got num_bits={bits} "
                                     f"type={kind}")
    strategy, dyn = _arg(input_activations, "strategy"), _arg(input_activations, "dynamic", False)
    if strategy == "token" and dyn is True:
        return False
    if strategy == "tensor" and not dyn:
        return True
    raise CheckpointError(where, f"input_activations must be dynamic per-token or static per-tensor; got "
                                 f"strategy={strategy!r} dynamic={dyn!r}")


# ------------------------------------------------------------------------------------------- sparsity_config
class Sparse24Config(BaseModel):
    """The checked `sparsity_config` of a 2:4 checkpoint (extra upstream keys such as global_sparsity are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: str
    sparsity_structure: str = SPARSITY_STRUCTURE
    targets: tuple[str, ...] = ("Linear",)
    ignore: tuple[str, ...] = ()


def parse_sparsity_config(quant_config: dict, where: str = "quantization_config") -> Sparse24Config | None:
    """The 2:4 sparsity of a compressed-tensors quantization_config, or None when it declares none or another
    structure (not ours: vLLM decides). A 2:4 config in a storage format we cannot read raises."""
    sc = quant_config.get("sparsity_config")
    if not sc:
        return None
    if not isinstance(sc, dict):
        raise CheckpointError(where, f"sparsity_config must be a mapping, got {type(sc).__name__}")
    if str(sc.get("sparsity_structure")) != SPARSITY_STRUCTURE:
        return None
    storage_format(sc.get("format"), where)
    clean = {**sc, "targets": tuple(sc.get("targets") or ("Linear",)), "ignore": tuple(sc.get("ignore") or ())}
    return Sparse24Config.model_validate(clean)


@dataclass
class SparseFp8Scheme:
    """What a checkpoint declares, checked: everything the loader needs to know."""

    sparsity_format: str
    weight_strategy: str  # "channel" | "tensor"
    activation_dynamic: bool  # True: per-token dynamic; False: static per-tensor `input_scale`
    sparse_targets: list[str] = field(default_factory=lambda: ["Linear"])
    sparse_ignore: list[str] = field(default_factory=list)
    quant_ignore: list[str] = field(default_factory=list)

    @property
    def storage(self) -> "StorageFormat":
        return storage_format(self.sparsity_format)

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
    """Validate a whole `quantization_config` for our loader (one config group for every 2:4 layer)."""
    if not isinstance(qc, dict):
        raise CheckpointError(where, "has no quantization_config: not a compressed-tensors checkpoint")
    if qc.get("quant_method") != QUANT_METHOD:
        raise CheckpointError(where, f"quant_method is {qc.get('quant_method')!r}, expected {QUANT_METHOD!r}")
    sparsity = parse_sparsity_config(qc, where)
    if sparsity is None:
        sc = qc.get("sparsity_config")
        if not sc:
            raise CheckpointError(where, "quantization_config has no sparsity_config: not a 2:4 checkpoint")
        raise CheckpointError(where, f"sparsity_structure is {sc.get('sparsity_structure')!r}, expected "
                                     f"{SPARSITY_STRUCTURE!r}")
    groups = qc.get("config_groups") or {}
    if len(groups) != 1:
        raise CheckpointError(where, f"expected exactly one config group, found {len(groups)}")
    group = next(iter(groups.values()))
    static_input = check_quant_args(where, group.get("weights"), group.get("input_activations"))
    return SparseFp8Scheme(
        sparsity_format=sparsity.format, weight_strategy=_arg(group["weights"], "strategy"),
        activation_dynamic=not static_input, sparse_targets=list(sparsity.targets),
        sparse_ignore=list(sparsity.ignore), quant_ignore=list(qc.get("ignore") or []),
    )


# ----------------------------------------------------------------------------------------- tensors and scales
@dataclass(frozen=True)
class TensorSpec:
    """What one checkpoint tensor of a layer must be. None in `shape`: not known to the caller (a fused shard's
    rows). `sharded`: tensor parallelism splits it along N/K (the [2, 1] shape record is never split)."""

    shape: tuple[int | None, ...]
    dtype: torch.dtype
    sharded: bool = True

    def check(self, t: torch.Tensor, where: str) -> None:
        got = tuple(t.shape)
        if len(got) != len(self.shape) or any(e is not None and g != e for g, e in zip(got, self.shape)):
            raise CheckpointError(where, f"checkpoint tensor has shape {got}, expected {_shape_text(self.shape)}")
        if t.dtype != self.dtype:
            raise CheckpointError(where, f"checkpoint tensor has dtype {t.dtype}, expected {self.dtype}")


def _shape_text(shape: tuple[int | None, ...]) -> str:
    dims = ["N" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


SCALE_NAMES = ("weight_scale", "input_scale")


def canonical_scale(t: torch.Tensor, strategy: str, n: int | None, where: str) -> torch.Tensor:
    """A scale tensor in the format's shape: [N, 1] per channel (a [N] one reads the same), [1] per tensor
    (tools write it as [], [1] or [1, 1]). n=None: the row count is not known to the caller."""
    got = tuple(t.shape)
    if not t.is_floating_point():
        raise CheckpointError(where, f"checkpoint tensor has dtype {t.dtype}, expected a float dtype")
    if strategy == "tensor":
        if t.numel() != 1:
            raise CheckpointError(where, f"per-tensor scale must hold 1 value, checkpoint tensor has shape {got}")
        return t.reshape(1)
    t = t.reshape(-1, 1) if t.dim() == 1 else t
    if t.dim() != 2 or t.shape[1] != 1 or (n is not None and t.shape[0] != n):
        raise CheckpointError(where, f"checkpoint tensor has shape {got}, expected {_shape_text((n, 1))}")
    return t


def check_scale_values(t: torch.Tensor, where: str) -> None:
    """FP8 scales multiply the GEMM result: NaN, inf, zero or a sign flip would corrupt whole output channels."""
    s = t.detach().float().reshape(-1)
    for bad, what in ((~torch.isfinite(s), "NaN or inf"), (s <= 0, "zero or negative scales")):
        rows = bad.nonzero()
        if rows.numel():
            row = int(rows[0])
            raise CheckpointError(where, f"holds {what} ({rows.numel()} of {s.numel()}; first at row {row}: "
                                         f"{s[row].item()})")


def per_channel_scale(t: torch.Tensor, n: int, strategy: str | None, where: str) -> torch.Tensor:
    """A checked weight scale as the kernel takes it: [N, 1] float32. strategy None: either 1 value (per
    tensor) or N values in any shape (the kernel API, `pack_sparse_fp8_weight`)."""
    if strategy is None:
        if t.numel() not in (1, n):
            raise CheckpointError(where, f"has {t.numel()} elements, expected 1 (per-tensor) or N={n} (per-channel)")
        strategy, t = ("tensor", t) if t.numel() == 1 else ("channel", t.reshape(n, 1))
    t = canonical_scale(t, strategy, n, where)
    check_scale_values(t, where)
    return t.float().reshape(-1).expand(n).reshape(n, 1).contiguous()


# ------------------------------------------------------------------------------------------------- 2:4 rules
def check_k(k: int, where: str) -> None:
    problem = layout.k_alignment_problem(k)
    if problem:
        raise CheckpointError(where, problem)


def check_2of4(w: torch.Tensor, locate: Locate) -> None:
    """Dense fp8 W [N, K] of a layer declared 2:4: at most 2 non-zeros in every group of 4 along K."""
    bad = layout.violating_groups(w).nonzero()
    if bad.numel():
        row, group = (int(v) for v in bad[0])
        label, r = locate(row)
        raise CheckpointError(label, f"not 2:4 sparse: row {r} group {group} (elements {4 * group}..{4 * group + 3} "
                                     f"along K) holds more than 2 non-zeros ({bad.shape[0]} such groups)")


# ------------------------------------------------------------------------------------------- storage formats
class StorageFormat:
    """One on-disk layout of a 2:4 FP8 weight. `weight_tensors` are the suffixes that hold the weight."""

    name: ClassVar[str]
    weight_tensors: ClassVar[tuple[str, ...]]

    def tensor_specs(self, n: int | None, k: int) -> dict[str, TensorSpec]:
        """suffix -> what it must be, for a weight of N rows (None: unknown) and K columns."""
        raise NotImplementedError

    def layer_tensors(self, static_input: bool) -> list[str]:
        """Every tensor a 2:4 layer needs in this format."""
        return [*self.weight_tensors, "weight_scale", *(["input_scale"] if static_input else [])]

    def layer_names(self, tensor_names: Iterable[str]) -> list[str]:
        """Prefixes of the layers stored in this format among a checkpoint's tensor names."""
        raise NotImplementedError

    def encode(self, w_fp8: torch.Tensor) -> dict[str, torch.Tensor]:
        """Dense 2:4 fp8 weight [N, K] -> this format's tensors, keyed by suffix (host tensors)."""
        raise NotImplementedError

    def dims(self, tensors: Callable[[str], torch.Tensor], where: Callable[[str], str]) -> tuple[int, int]:
        """(N, K) as the checkpoint records them."""
        raise NotImplementedError

    def to_dense(self, tensors: dict[str, torch.Tensor], k: int, locate: Locate) -> torch.Tensor:
        """This format's (shape-checked) tensors -> the dense fp8 weight [N, K], checking what only values show."""
        raise NotImplementedError

    def read_weight(self, get: Callable[[str], torch.Tensor], label: str) -> torch.Tensor:
        """Read and check one layer's weight from a whole checkpoint (`get(suffix)` loads P.suffix; `label`
        names the layer, e.g. "model.safetensors: P"): dims, K alignment, every tensor, 2:4. Dense fp8 [N, K]."""
        cache: dict[str, torch.Tensor] = {}
        load = lambda s: cache[s] if s in cache else cache.setdefault(s, get(s))  # noqa: E731
        where = lambda s: f"{label}.{s}"  # noqa: E731
        n, k = self.dims(load, where)
        check_k(k, where(self.weight_tensors[0]))
        for suffix, spec in self.tensor_specs(n, k).items():
            spec.check(load(suffix), where(suffix))
        w = self.to_dense({s: load(s) for s in self.weight_tensors}, k, _at(label))
        check_2of4(w, _at(label))
        return w


class DenseFp8Format(StorageFormat):
    """`dense`: the fp8 weight as is, 2:4 zeros included (RedHatAI's layout; vLLM's own FP8 layout too)."""

    name = "dense"
    weight_tensors = ("weight",)

    def tensor_specs(self, n, k):
        return {"weight": TensorSpec((n, k), FP8)}

    def layer_names(self, tensor_names):
        names = set(tensor_names)
        return sorted(t[: -len(".weight")] for t in names
                      if t.endswith(".weight") and t[: -len(".weight")] + ".weight_scale" in names)

    def encode(self, w_fp8):
        return {"weight": w_fp8.cpu()}

    def dims(self, tensors, where):
        w = tensors("weight")
        TensorSpec((None, None), FP8).check(w, where("weight"))
        return int(w.shape[0]), int(w.shape[1])

    def to_dense(self, tensors, k, locate):
        return tensors["weight"]


class Bitmask24Format(StorageFormat):
    """`sparse-24-bitmask`: the kept values plus a bit per element (compressed-tensors' codec, bitmask.py)."""

    name = "sparse-24-bitmask"
    weight_tensors = ("compressed", "bitmask", "shape")

    def tensor_specs(self, n, k):
        return {"compressed": TensorSpec((n, k // 2), FP8), "bitmask": TensorSpec((n, math.ceil(k / 8)), torch.uint8),
                "shape": TensorSpec((2, 1), torch.int64, sharded=False)}

    def layer_names(self, tensor_names):
        return sorted(t[: -len(".compressed")] for t in tensor_names if t.endswith(".compressed"))

    def encode(self, w_fp8):
        return encode_bitmask(w_fp8)

    def dims(self, tensors, where):
        shape = tensors("shape")
        self.tensor_specs(None, 0)["shape"].check(shape, where("shape"))
        n, k = (int(v) for v in shape.reshape(-1).tolist())
        return n, k

    @staticmethod
    def check_shape_record(shape: torch.Tensor, k: int, where: str) -> None:
        """The recorded K must be the layer's (N may be a fused shard's, so only K is comparable)."""
        recorded = int(shape.reshape(-1)[1])
        if recorded != k:
            raise CheckpointError(where, f"records K={recorded}, the layer has K={k}")

    def to_dense(self, tensors, k, locate):
        bitmask = tensors["bitmask"].cpu()
        kept = unpack_bitmask(bitmask, k).view(bitmask.shape[0], k // layout.GROUP, layout.GROUP).sum(-1)
        bad = (kept != 2).nonzero()
        if bad.numel():
            row, group = (int(v) for v in bad[0])
            label, r = locate(row)
            raise CheckpointError(f"{label}.bitmask", f"not 2:4 sparse: row {r} group {group} keeps "
                                                      f"{int(kept[row, group])} of 4 elements, 2:4 keeps exactly 2 "
                                                      f"({bad.shape[0]} such groups)")
        return decode_bitmask(tensors["compressed"].cpu(), bitmask, k).to(tensors["compressed"].device)


FORMATS: dict[str, StorageFormat] = {f.name: f for f in (DenseFp8Format(), Bitmask24Format())}
SPARSITY_FORMATS = tuple(FORMATS)


def storage_format(name: str | None, where: str = "sparsity_config") -> StorageFormat:
    """The storage format class of a `sparsity_config.format` value; raises naming the value otherwise."""
    if name not in FORMATS:
        raise CheckpointError(where, f"unknown sparsity format {name!r}; supported: {', '.join(SPARSITY_FORMATS)}")
    return FORMATS[name]
