"""Which checkpoints the plugin takes over, which quantization it accepts, and how the backend is chosen."""
from __future__ import annotations

import pytest
import torch
from compressed_tensors.quantization import QuantizationArgs

from sparse24.serve_app.vllm_plugin import backend
from sparse24.serve_app.vllm_plugin.backend import SparseBackend, select_backend
from sparse24.serve_app.vllm_plugin.sparsity import check_sparse_fp8_quant_args, parse_sparsity_config

W_CHANNEL = QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True, dynamic=False)
A_TOKEN = QuantizationArgs(num_bits=8, type="float", strategy="token", symmetric=True, dynamic=True)
A_STATIC = QuantizationArgs(num_bits=8, type="float", strategy="tensor", symmetric=True, dynamic=False)


@pytest.mark.parametrize("fmt", ["dense", "sparse-24-bitmask"])
def test_2of4_sparsity_configs_are_ours(fmt):
    spec = parse_sparsity_config({"sparsity_config": {"format": fmt, "sparsity_structure": "2:4",
                                                      "targets": ["Linear"], "ignore": ["lm_head"]}})
    assert spec.format == fmt and spec.targets == ("Linear",) and spec.ignore == ("lm_head",)


@pytest.mark.parametrize("qc", [{}, {"sparsity_config": None},
                                {"sparsity_config": {"format": "dense", "sparsity_structure": "unstructured"}}])
def test_other_compressed_tensors_configs_are_left_to_vllm(qc):
    assert parse_sparsity_config(qc) is None


def test_unknown_2of4_storage_format_is_refused_by_name():
    with pytest.raises(ValueError, match="'sparse-bitmask'"):
        parse_sparsity_config({"sparsity_config": {"format": "sparse-bitmask", "sparsity_structure": "2:4"}})


def test_supported_quantization_is_accepted():
    assert check_sparse_fp8_quant_args("l", W_CHANNEL, A_TOKEN) is False
    assert check_sparse_fp8_quant_args("l", W_CHANNEL.model_copy(update={"strategy": "tensor"}), A_STATIC) is True


@pytest.mark.parametrize("weights, acts, match", [
    (None, A_TOKEN, "declares this layer 2:4 sparse but not FP8"),
    (QuantizationArgs(num_bits=4, type="int", strategy="channel"), A_TOKEN, "must be FP8"),
    (W_CHANNEL.model_copy(update={"strategy": "group", "group_size": 128}), A_TOKEN, "strategy 'group'"),
    (W_CHANNEL, None, "weight-only FP8"),
    (W_CHANNEL, A_TOKEN.model_copy(update={"dynamic": False}), "dynamic per-token or static per-tensor"),
])
def test_unsupported_quantization_of_a_2of4_layer_is_refused_naming_it(weights, acts, match):
    with pytest.raises(ValueError, match=match) as e:
        check_sparse_fp8_quant_args("model.layers.0.mlp.down_proj", weights, acts)
    assert str(e.value).startswith("model.layers.0.mlp.down_proj:")


def test_cpu_default_is_the_reference_path(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.REFERENCE


def test_env_var_forces_the_dense_fallback(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "dense-fallback")
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.DENSE_FALLBACK


def test_static_activation_scales_use_the_dense_fallback_on_gpu(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert select_backend(torch.device("cuda"), static_input_scale=True) == SparseBackend.DENSE_FALLBACK


def test_forcing_cutlass_without_a_hopper_gpu_fails_with_the_reason(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "cutlass")
    with pytest.raises(RuntimeError, match="SPARSE24_BACKEND=cutlass but the sparse kernel cannot run: device is cpu"):
        select_backend(torch.device("cpu"), static_input_scale=False)


def test_a_misspelled_backend_is_refused_listing_the_choices(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "cutless")
    with pytest.raises(ValueError, match="'cutless' is not one of: auto, reference, cutlass, dense-fallback"):
        select_backend(torch.device("cpu"), static_input_scale=False)
