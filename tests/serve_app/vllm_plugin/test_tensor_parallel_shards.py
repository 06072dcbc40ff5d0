"""Tensor-parallel shard math of 2:4 layers, through vLLM's own parameter loaders (no multi-GPU needed).

vLLM narrows each checkpoint tensor per rank inside its parameter classes; here the real classes do the
narrowing for every simulated rank (their tp_rank/tp_size set as vLLM would), and each rank's decoded
weight must be exactly that rank's slice of the dense 2:4 weight, with 2:4 groups and metadata intact.
"""
from __future__ import annotations

import pytest
import torch

from sparse24.kernels import layout, reference
from sparse24.kernels.checkpoint.bitmask import decode_bitmask, encode_bitmask
from sparse24.kernels.checkpoint.prune import get_pruner
from sparse24.serve_app.vllm_plugin.tensor_parallel import (
    check_partition_alignment,
    narrow_k,
    per_tensor_to_per_channel,
    shard_of_row,
)


@pytest.fixture(scope="module", autouse=True)
def single_process_group(tmp_path_factory):
    """vLLM's parameter classes read the TP group at construction: a 1-process gloo group over a file."""
    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import parallel_state as ps

    with set_current_vllm_config(VllmConfig()):
        if not ps.model_parallel_is_initialized():
            init_file = tmp_path_factory.mktemp("pg") / "init"
            ps.init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo",
                                            distributed_init_method=f"file://{init_file}")
            ps.initialize_model_parallel(1, 1)
        yield


def _sparse_fp8(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    return reference.quantize_weight_per_channel_fp8(w * get_pruner("magnitude")(w))


def _param(cls, data, rank, tp, **dims):
    p = cls(data=data, weight_loader=None, **dims)
    p.tp_rank, p.tp_size = rank, tp
    return p


@pytest.mark.parametrize("tp", [2, 4])
def test_row_parallel_k_shards_of_bitmask_tensors_decode_to_the_dense_k_slice(tp):
    from vllm.model_executor.parameter import ModelWeightParameter

    n, k = 128, 1024
    w, _ = _sparse_fp8(n, k, seed=tp)
    disk = encode_bitmask(w)
    full_values, full_meta = layout.compress_2of4(w)
    kp = k // tp
    for rank in range(tp):
        comp = _param(ModelWeightParameter, torch.empty(n, kp // 2, dtype=torch.float8_e4m3fn), rank, tp,
                      input_dim=1, output_dim=0)
        mask = _param(ModelWeightParameter, torch.empty(n, kp // 8, dtype=torch.uint8), rank, tp, input_dim=1, output_dim=0)
        comp.load_row_parallel_weight(disk["compressed"])
        mask.load_row_parallel_weight(disk["bitmask"])
        shard = decode_bitmask(comp.data, mask.data, kp)
        expected = narrow_k(w, rank, tp)
        assert torch.equal(shard.float(), expected.float())  # -0 and +0 are both a pruned zero
        values, meta = layout.compress_2of4(shard)  # what the plugin packs on this rank
        assert torch.equal(meta, narrow_k(full_meta, rank, tp))
        assert torch.equal(values.float(), narrow_k(full_values, rank, tp).float())


@pytest.mark.parametrize("tp", [1, 2])
def test_merged_column_shards_with_per_tensor_scales_become_per_channel(tp):
    """gate_up_proj: two 2:4 shards loaded by shard id along N; per-tensor scales expand per row."""
    from vllm.model_executor.parameter import ModelWeightParameter, PerTensorScaleParameter

    k, sizes = 256, [512, 512]
    shards = [_sparse_fp8(n, k, seed=10 + i) for i, n in enumerate(sizes)]
    per_tensor = [torch.tensor([0.5 + i]) for i in range(len(sizes))]
    local = [n // tp for n in sizes]
    for rank in range(tp):
        comp = _param(ModelWeightParameter, torch.empty(sum(local), k // 2, dtype=torch.float8_e4m3fn), rank, tp,
                      input_dim=1, output_dim=0)
        mask = _param(ModelWeightParameter, torch.empty(sum(local), k // 8, dtype=torch.uint8), rank, tp,
                      input_dim=1, output_dim=0)
        scale = _param(PerTensorScaleParameter, torch.empty(len(sizes)), rank, tp)
        for i, (w, _) in enumerate(shards):
            disk = encode_bitmask(w)
            offset, size = sum(local[:i]), local[i]
            comp.load_merged_column_weight(disk["compressed"], shard_id=i, shard_offset=offset, shard_size=size)
            mask.load_merged_column_weight(disk["bitmask"], shard_id=i, shard_offset=offset, shard_size=size)
            scale.load_merged_column_weight(per_tensor[i], shard_id=i, shard_offset=offset, shard_size=size)
        dense = decode_bitmask(comp.data, mask.data, k)
        expected = torch.cat([w[rank * n: (rank + 1) * n] for (w, _), n in zip(shards, local)])
        assert torch.equal(dense.float(), expected.float())
        per_channel = per_tensor_to_per_channel(scale.data, local)
        assert torch.equal(per_channel, torch.cat([s.expand(n) for s, n in zip(per_tensor, local)]).reshape(-1, 1))


def test_qkv_shards_load_by_name_and_rows_map_back_to_their_shard():
    from vllm.model_executor.parameter import ModelWeightParameter

    k, sizes = 256, [256, 128, 128]  # q, k, v of the tiny model
    shards = [_sparse_fp8(n, k, seed=20 + i)[0] for i, n in enumerate(sizes)]
    p = _param(ModelWeightParameter, torch.empty(sum(sizes), k, dtype=torch.float8_e4m3fn), 0, 1, input_dim=1, output_dim=0)
    for i, (sid, w) in enumerate(zip("qkv", shards)):
        p.load_qkv_weight(w, shard_id=sid, shard_offset=sum(sizes[:i]), shard_size=sizes[i], num_heads=1)
    assert torch.equal(p.data.float(), torch.cat(shards).float())
    assert [shard_of_row(r, sizes) for r in (0, 255, 256, 383, 384, 511)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("k, tp", [(1344, 4), (960, 2), (100, 1)])
def test_k_split_that_would_cut_2of4_metadata_fails_naming_the_layer(k, tp):
    with pytest.raises(ValueError, match=r"model\.layers\.3\.mlp\.down_proj: K per rank = \d+ .*multiple of 64"):
        check_partition_alignment("model.layers.3.mlp.down_proj", k, k // tp, [4096])


def test_aligned_k_split_is_accepted():
    check_partition_alignment("model.layers.0.mlp.down_proj", 14336, 14336 // 8, [4096])  # Llama-3.1-8B, TP 8
