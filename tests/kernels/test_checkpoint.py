"""compress -> inspect -> load round trip on the tiny model, and every bad-input message."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sparse24.kernels import layout, reference
from sparse24.kernels.checkpoint import CheckpointError, CheckpointReader, compress_tensor, load_sparse_layers
from sparse24.kernels.checkpoint.bitmask import decode_bitmask, encode_bitmask
from sparse24.kernels.checkpoint.inspect import inspect_checkpoint
from sparse24.kernels.cli import main as cli

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_bitmask_codec_matches_numpy_packbits_little_and_round_trips():
    w = torch.randn(8, 72)
    w = (w * (torch.arange(72) % 4 < 2)).to(torch.float8_e4m3fn)  # keep positions 0,1 of each group
    enc = encode_bitmask(w)
    assert enc["compressed"].shape == (8, 36) and enc["bitmask"].shape == (8, 9) and enc["shape"].tolist() == [[8], [72]]
    expected = np.packbits((np.arange(72) % 4 < 2)[None].repeat(8, 0), axis=-1, bitorder="little")
    assert np.array_equal(enc["bitmask"].numpy(), expected)
    assert torch.equal(decode_bitmask(enc["compressed"], enc["bitmask"], 72).float(), w.float())


@pytest.mark.parametrize("fixture", ["tiny_sparse_dir", "tiny_sparse_dense_format_dir"])
def test_config_json_is_compressed_tensors_2of4_fp8(request, fixture):
    qc = json.loads((request.getfixturevalue(fixture) / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["format"] == "float-quantized"
    group = qc["config_groups"]["group_0"]
    assert group["weights"].items() >= {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False}.items()
    assert group["input_activations"].items() >= {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}.items()
    assert qc["sparsity_config"]["sparsity_structure"] == "2:4"
    assert qc["sparsity_config"]["format"] == ("sparse-24-bitmask" if "bitmask" in str(request.getfixturevalue(fixture)) else "dense")
    assert qc["ignore"] == ["lm_head"]


def test_bitmask_checkpoint_tensors_have_documented_names_and_shapes(tiny_sparse_dir):
    t = load_file(tiny_sparse_dir / "model.safetensors")
    p = "model.layers.0.mlp.down_proj"
    assert t[f"{p}.compressed"].dtype == torch.float8_e4m3fn and t[f"{p}.compressed"].shape == (256, 256)
    assert t[f"{p}.bitmask"].dtype == torch.uint8 and t[f"{p}.bitmask"].shape == (256, 64)
    assert t[f"{p}.shape"].dtype == torch.int64 and t[f"{p}.shape"].tolist() == [[256], [512]]
    assert t[f"{p}.weight_scale"].shape == (256, 1) and t[f"{p}.weight_scale"].dtype == torch.float32
    assert f"{p}.weight" not in t and t["lm_head.weight"].dtype == torch.bfloat16


def test_both_formats_load_to_the_same_layers_equal_to_prune_then_quantize(tiny_dense_dir, tiny_sparse_dir,
                                                                            tiny_sparse_dense_format_dir):
    a, b = load_sparse_layers(tiny_sparse_dir), load_sparse_layers(tiny_sparse_dense_format_dir)
    assert sorted(a) == sorted(b) and len(a) == 2 * len(LINEARS)
    dense = load_file(tiny_dense_dir / "model.safetensors")
    for name, layer in a.items():
        assert torch.equal(layer.values.view(torch.uint8), b[name].values.view(torch.uint8))
        assert torch.equal(layer.meta, b[name].meta) and torch.equal(layer.scale, b[name].scale)
        expected = compress_tensor(dense[f"{name}.weight"], "dense")
        assert torch.equal(layer.dense_fp8().float(), expected["weight"].float())


def test_inspect_reports_all_layers_conforming(tiny_sparse_dir, capsys):
    report = inspect_checkpoint(tiny_sparse_dir)
    assert report.ok and len(report.layers) == 14 and report.sparsity_format == "sparse-24-bitmask"
    assert cli(["inspect", str(tiny_sparse_dir)]) == 0
    assert "all layers conform to 2:4" in capsys.readouterr().out


def test_reference_forward_of_loaded_layer_matches_dequantized_dense_weight(tiny_sparse_dir):
    layer = load_sparse_layers(tiny_sparse_dir)["model.layers.1.mlp.gate_proj"]
    x = torch.randn(5, layer.k)
    y = reference.sparse_fp8_linear_reference(x, layer.dense_fp8(), layer.scale, out_dtype=torch.float16)
    y_dense = x @ (layer.dense_fp8().float() * layer.scale).t()
    # Only activation quantization differs: e4m3 relative step 2^-4 per element, averaged over K=256 terms.
    assert torch.allclose(y.float(), y_dense, rtol=0.05, atol=0.05 * y_dense.abs().max().item())


# ---- bad input: every case names the file/tensor and the problem ----

def _copy(src, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst


def _edit_tensors(d, fn):
    t = load_file(d / "model.safetensors")
    fn(t)
    save_file(t, d / "model.safetensors")


def _edit_config(d, fn):
    c = json.loads((d / "config.json").read_text())
    fn(c)
    (d / "config.json").write_text(json.dumps(c))


P = "model.layers.0.self_attn.o_proj"


def _set_nonfinite_scale(t):
    t[f"{P}.weight_scale"][3] = float("nan")


def _break_2of4_dense(t):
    t[f"{P}.weight"][0, :4] = torch.ones(4).to(torch.float8_e4m3fn)


def _break_bitmask(t):
    t[f"{P}.bitmask"][0, 0] = 0xFF


def _wrong_scale_shape(t):
    t[f"{P}.weight_scale"] = t[f"{P}.weight_scale"][:10]


def _drop_bitmask(t):
    del t[f"{P}.bitmask"]


def _wrong_compressed_shape(t):
    t[f"{P}.compressed"] = t[f"{P}.compressed"][:, :64].contiguous()


@pytest.mark.parametrize("fixture,edit,message", [
    ("tiny_sparse_dense_format_dir", _break_2of4_dense, f"{P}: not 2:4 sparse: row 0 group 0"),
    ("tiny_sparse_dir", _break_bitmask, f"{P}.bitmask: not 2:4 sparse: row 0 group 0 keeps 4 of 4"),
    ("tiny_sparse_dir", _wrong_scale_shape, f"{P}.weight_scale: checkpoint tensor has shape (10, 1), expected (256, 1)"),
    ("tiny_sparse_dir", _set_nonfinite_scale, f"{P}.weight_scale: holds NaN or inf (1 of 256; first at row 3"),
    ("tiny_sparse_dir", _drop_bitmask, f"tensor {P}.bitmask is missing"),
    ("tiny_sparse_dir", _wrong_compressed_shape,
     f"{P}.compressed: checkpoint tensor has shape (256, 64), expected (256, 128)"),
])
def test_bad_tensors_raise_checkpoint_error_naming_the_tensor(request, tmp_path, fixture, edit, message):
    d = _copy(request.getfixturevalue(fixture), tmp_path)
    _edit_tensors(d, edit)
    with pytest.raises(CheckpointError) as e:
        load_sparse_layers(d)
    assert message in str(e.value) and "model.safetensors" in str(e.value)


def test_inspect_lists_the_failing_layer_and_cli_exits_1(tmp_path, tiny_sparse_dense_format_dir, capsys):
    d = _copy(tiny_sparse_dense_format_dir, tmp_path)
    _edit_tensors(d, _break_2of4_dense)
    report = inspect_checkpoint(d)
    assert not report.ok and [r.name for r in report.layers if not r.conforms_2of4] == [P]
    assert cli(["inspect", str(d)]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["quantization_config"]["sparsity_config"].update(format="sparse-bitmask"), "unknown sparsity format 'sparse-bitmask'"),
    (lambda c: c["quantization_config"]["sparsity_config"].update(sparsity_structure="unstructured"), "expected '2:4'"),
    (lambda c: c["quantization_config"].pop("sparsity_config"), "no sparsity_config"),
    (lambda c: c.pop("quantization_config"), "no quantization_config"),
    (lambda c: c["quantization_config"].update(quant_method="gptq"), "quant_method is 'gptq'"),
    (lambda c: c["quantization_config"]["config_groups"]["group_0"]["weights"].update(num_bits=4, type="int"), "weights must be FP8 (num_bits 8, type float"),
    (lambda c: c["quantization_config"]["config_groups"]["group_0"]["input_activations"].update(strategy="group"), "dynamic per-token or static per-tensor"),
])
def test_bad_config_raises_naming_config_json(tmp_path, tiny_sparse_dir, edit, message):
    d = _copy(tiny_sparse_dir, tmp_path)
    _edit_config(d, edit)
    with pytest.raises(CheckpointError, match="config.json") as e:
        CheckpointReader(d)
    assert message in str(e.value)


def test_missing_files_are_named(tmp_path, tiny_sparse_dir, capsys):
    with pytest.raises(CheckpointError, match="is not a directory"):
        CheckpointReader(tmp_path / "nope")
    d = _copy(tiny_sparse_dir, tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="holds no \\*.safetensors files"):
        CheckpointReader(d)
    (d / "config.json").unlink()
    assert cli(["inspect", str(d)]) == 2
    assert "config.json: missing" in capsys.readouterr().err


def test_k_not_aligned_is_rejected_with_the_value(tmp_path, tiny_sparse_dense_format_dir):
    d = _copy(tiny_sparse_dense_format_dir, tmp_path)

    def shrink(t):
        t[f"{P}.weight"] = t[f"{P}.weight"][:, :96].contiguous()

    _edit_tensors(d, shrink)
    with pytest.raises(CheckpointError, match="K=96 is not a multiple of 64"):
        load_sparse_layers(d)


def test_compress_refuses_already_quantized_model_and_unknown_pruner(tmp_path, tiny_sparse_dir, tiny_dense_dir, capsys):
    assert cli(["compress", str(tiny_sparse_dir), str(tmp_path / "x"), "--quiet"]) == 2
    assert "already quantized" in capsys.readouterr().err
    assert cli(["compress", str(tiny_dense_dir), str(tmp_path / "y"), "--pruner", "sparsegpt", "--quiet"]) == 2
    assert "unknown pruner 'sparsegpt'" in capsys.readouterr().err


def test_compress_is_deterministic(tmp_path, tiny_dense_dir, tiny_sparse_dir):
    cli(["compress", str(tiny_dense_dir), str(tmp_path / "again"), "--quiet"])
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tiny_sparse_dir / "model.safetensors").read_bytes()
