"""The checkpoint format spec (kernels/checkpoint/format.py): it accepts what the compressor writes, and each
rule rejects a bad input with a message naming the tensor (or layer) and the problem."""
from __future__ import annotations

import pytest
import torch
from compressed_tensors.quantization import QuantizationArgs

from sparse24.kernels.checkpoint import format as fmt
from sparse24.kernels.checkpoint.compress import compress_tensor
from sparse24.kernels.checkpoint.config import build_quantization_config
from sparse24.kernels.checkpoint.format import CheckpointError

N, K = 16, 128
W_CHANNEL = QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True, dynamic=False)
A_TOKEN = QuantizationArgs(num_bits=8, type="float", strategy="token", symmetric=True, dynamic=True)
A_STATIC = QuantizationArgs(num_bits=8, type="float", strategy="tensor", symmetric=True, dynamic=False)


def _weight(seed: int = 0) -> torch.Tensor:
    return torch.randn(N, K, generator=torch.Generator().manual_seed(seed))


def _read(name: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    def get(suffix):
        if suffix not in tensors:
            raise CheckpointError("f.safetensors", f"tensor P.{suffix} is missing")
        return tensors[suffix]

    return fmt.FORMATS[name].read_weight(get, "f.safetensors: P")


# ---------------------------------------------------------------------------------- the compressor's output
@pytest.mark.parametrize("name", fmt.SPARSITY_FORMATS)
def test_each_storage_format_accepts_the_compressors_tensors_and_reads_back_its_weight(name):
    out = compress_tensor(_weight(), name)
    assert set(out) == set(fmt.FORMATS[name].layer_tensors(static_input=False))
    w = _read(name, out)
    expected = compress_tensor(_weight(), "dense")["weight"]
    assert w.shape == (N, K) and torch.equal(w.float(), expected.float())  # -0 and +0 alike: both are dropped
    scale = fmt.per_channel_scale(out["weight_scale"], N, "channel", "P.weight_scale")
    assert scale.shape == (N, 1) and scale.dtype == torch.float32


def test_layer_names_are_found_by_each_formats_own_tensors():
    names = ["a.weight", "a.weight_scale", "b.compressed", "b.bitmask", "b.shape", "b.weight_scale", "lm_head.weight"]
    assert fmt.FORMATS["dense"].layer_names(names) == ["a"]
    assert fmt.FORMATS["sparse-24-bitmask"].layer_names(names) == ["b"]


@pytest.mark.parametrize("name", fmt.SPARSITY_FORMATS)
def test_the_written_quantization_config_parses_to_channel_weights_and_dynamic_token_activations(name):
    scheme = fmt.parse_quantization_config(build_quantization_config(name, 0.5, 2.0))
    assert (scheme.sparsity_format, scheme.weight_strategy, scheme.activation_dynamic) == (name, "channel", True)
    assert scheme.is_sparse_layer("model.layers.0.mlp.down_proj") and not scheme.is_sparse_layer("lm_head")


def test_the_dense_fp8_baseline_config_declares_no_2of4_sparsity():
    assert fmt.parse_sparsity_config(build_quantization_config(None, 0.0, 1.0)) is None


# ----------------------------------------------------------------------------------------- sparsity_config
@pytest.mark.parametrize("name", fmt.SPARSITY_FORMATS)
def test_2of4_sparsity_configs_are_ours(name):
    spec = fmt.parse_sparsity_config({"sparsity_config": {"format": name, "sparsity_structure": "2:4",
                                                          "targets": ["Linear"], "ignore": ["lm_head"]}})
    assert spec.format == name and spec.targets == ("Linear",) and spec.ignore == ("lm_head",)


@pytest.mark.parametrize("qc", [{}, {"sparsity_config": None},
                                {"sparsity_config": {"format": "dense", "sparsity_structure": "unstructured"}}])
def test_other_compressed_tensors_configs_are_left_to_vllm(qc):
    assert fmt.parse_sparsity_config(qc) is None


def test_unknown_2of4_storage_format_is_refused_by_name():
    with pytest.raises(CheckpointError, match="unknown sparsity format 'sparse-bitmask'; supported: dense, "):
        fmt.parse_sparsity_config({"sparsity_config": {"format": "sparse-bitmask", "sparsity_structure": "2:4"}})


def test_a_sparsity_config_that_is_not_a_mapping_is_refused():
    with pytest.raises(CheckpointError, match="sparsity_config must be a mapping, got list"):
        fmt.parse_sparsity_config({"sparsity_config": ["2:4"]})


# --------------------------------------------------------------------------------------- quantization args
def test_supported_quantization_is_accepted_as_objects_and_as_json():
    assert fmt.check_quant_args("l", W_CHANNEL, A_TOKEN) is False
    assert fmt.check_quant_args("l", W_CHANNEL.model_copy(update={"strategy": "tensor"}), A_STATIC) is True
    assert fmt.check_quant_args("l", fmt.WRITTEN_WEIGHT_ARGS, fmt.WRITTEN_ACTIVATION_ARGS) is False
    assert fmt.check_quant_args("l", W_CHANNEL.model_dump(mode="json"), A_STATIC.model_dump(mode="json")) is True


@pytest.mark.parametrize("weights, acts, match", [
    (None, A_TOKEN, "declares 2:4 sparsity but no FP8 weight quantization"),
    (QuantizationArgs(num_bits=4, type="int", strategy="channel"), A_TOKEN, "must be FP8 .* got num_bits=4 type=int"),
    (W_CHANNEL.model_copy(update={"symmetric": False}), A_TOKEN, "symmetric=False"),
    (W_CHANNEL.model_copy(update={"dynamic": True}), A_TOKEN, "static.*dynamic=True"),
    (W_CHANNEL.model_copy(update={"strategy": "group", "group_size": 128}), A_TOKEN, "strategy 'group'"),
    (W_CHANNEL, None, "weight-only FP8"),
    (W_CHANNEL, QuantizationArgs(num_bits=8, type="int", strategy="token", dynamic=True), "input_activations must be FP8"),
    (W_CHANNEL, A_TOKEN.model_copy(update={"dynamic": False}), "dynamic per-token or static per-tensor"),
])
def test_unsupported_quantization_of_a_2of4_layer_is_refused_naming_it(weights, acts, match):
    for w, a in ((weights, acts), (_json(weights), _json(acts))):
        with pytest.raises(CheckpointError, match=match) as e:
            fmt.check_quant_args("model.layers.0.mlp.down_proj", w, a)
        assert str(e.value).startswith("model.layers.0.mlp.down_proj:")


def _json(args):
    return None if args is None else args.model_dump(mode="json")


# ------------------------------------------------------------------------------------------ tensors, scales
def test_a_tensor_of_the_wrong_shape_or_dtype_is_refused_naming_it():
    spec = fmt.FORMATS["sparse-24-bitmask"].tensor_specs(N, K)
    with pytest.raises(CheckpointError, match=r"^P.compressed: checkpoint tensor has shape \(16, 32\), expected \(16, 64\)"):
        spec["compressed"].check(torch.zeros(N, 32, dtype=torch.float8_e4m3fn), "P.compressed")
    with pytest.raises(CheckpointError, match="P.bitmask: checkpoint tensor has dtype torch.int8, expected torch.uint8"):
        spec["bitmask"].check(torch.zeros(N, K // 8, dtype=torch.int8), "P.bitmask")
    # rows unknown (a fused shard): only K is compared
    fmt.FORMATS["dense"].tensor_specs(None, K)["weight"].check(torch.zeros(3, K, dtype=torch.float8_e4m3fn), "P")


@pytest.mark.parametrize("scale, strategy, match", [
    (torch.ones(10, 1), "channel", r"checkpoint tensor has shape \(10, 1\), expected \(16, 1\)"),
    (torch.ones(N, 2), "channel", r"checkpoint tensor has shape \(16, 2\), expected \(16, 1\)"),
    (torch.ones(2), "tensor", r"per-tensor scale must hold 1 value, checkpoint tensor has shape \(2,\)"),
    (torch.ones(N, 1, dtype=torch.int32), "channel", "checkpoint tensor has dtype torch.int32, expected a float dtype"),
])
def test_a_scale_of_the_wrong_shape_or_dtype_is_refused(scale, strategy, match):
    with pytest.raises(CheckpointError, match=f"^P.weight_scale: {match}"):
        fmt.canonical_scale(scale, strategy, N, "P.weight_scale")


def test_scales_in_any_unambiguous_shape_read_as_the_formats_shape():
    assert fmt.canonical_scale(torch.ones(N), "channel", N, "s").shape == (N, 1)
    assert fmt.canonical_scale(torch.ones(()), "tensor", None, "s").shape == (1,)
    assert fmt.canonical_scale(torch.ones(1, 1, dtype=torch.bfloat16), "tensor", None, "s").shape == (1,)
    assert fmt.per_channel_scale(torch.tensor(2.0), N, None, "s").tolist() == [[2.0]] * N


@pytest.mark.parametrize("value, match", [(float("nan"), "NaN or inf"), (float("inf"), "NaN or inf"),
                                          (0.0, "zero or negative scales"), (-1.0, "zero or negative scales")])
def test_a_non_finite_or_non_positive_scale_is_refused_naming_the_row(value, match):
    s = torch.ones(N, 1)
    s[5] = value
    with pytest.raises(CheckpointError, match=f"^P.weight_scale: holds {match} \\(1 of 16; first at row 5"):
        fmt.per_channel_scale(s, N, "channel", "P.weight_scale")


def test_the_kernel_api_takes_one_scale_or_one_per_channel():
    with pytest.raises(CheckpointError, match=r"weight scale: has 3 elements, expected 1 \(per-tensor\) or N=16"):
        fmt.per_channel_scale(torch.ones(3), N, None, "weight scale")


# --------------------------------------------------------------------------------------------- 2:4 rules
def test_k_not_aligned_to_the_kernels_is_refused_with_the_value():
    with pytest.raises(CheckpointError, match="P.weight: K=96 is not a multiple of 64"):
        fmt.check_k(96, "P.weight")


def test_more_than_2_non_zeros_in_a_group_is_refused_naming_the_layer_and_row_it_came_from():
    w = compress_tensor(_weight(), "dense")["weight"]
    w[9, 4:8] = torch.ones(4).to(torch.float8_e4m3fn)
    shard = lambda row: ("qkv.k_proj", row - 8) if row >= 8 else ("qkv.q_proj", row)  # noqa: E731
    with pytest.raises(CheckpointError, match=r"^qkv.k_proj: not 2:4 sparse: row 1 group 1 \(elements 4..7 along K\)"):
        fmt.check_2of4(w, shard)


@pytest.mark.parametrize("byte, kept", [(0x07, 3), (0x01, 1)])
def test_a_bitmask_group_not_keeping_exactly_2_is_refused(byte, kept):
    out = compress_tensor(_weight(), "sparse-24-bitmask")
    out["bitmask"][2, 0] = byte  # groups 0 and 1 of row 2
    with pytest.raises(CheckpointError, match=f"^f.safetensors: P.bitmask: not 2:4 sparse: row 2 group 0 keeps {kept} of 4"):
        _read("sparse-24-bitmask", out)


def test_a_bitmask_shape_record_must_be_2_int64_values_matching_the_layers_k():
    out = compress_tensor(_weight(), "sparse-24-bitmask")
    with pytest.raises(CheckpointError, match=r"P.shape: checkpoint tensor has shape \(3, 1\), expected \(2, 1\)"):
        _read("sparse-24-bitmask", {**out, "shape": torch.tensor([[N], [K], [1]])})
    with pytest.raises(CheckpointError, match="P.shape: records K=128, the layer has K=256"):
        fmt.Bitmask24Format.check_shape_record(out["shape"], 256, "P.shape")


def test_a_missing_tensor_is_named():
    out = compress_tensor(_weight(), "sparse-24-bitmask")
    del out["bitmask"]
    with pytest.raises(CheckpointError, match="tensor P.bitmask is missing"):
        _read("sparse-24-bitmask", out)


def test_an_unknown_storage_format_is_refused_listing_the_supported_ones():
    with pytest.raises(CheckpointError, match="unknown sparsity format 'nvfp4'; supported: dense, sparse-24-bitmask"):
        fmt.storage_format("nvfp4")
