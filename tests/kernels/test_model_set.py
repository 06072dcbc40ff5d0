"""`sparse24 model-set`: one set of weights -> bf16, fp8-dynamic, 2:4 (bitmask and dense); random 8B-style weights."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sparse24.kernels.checkpoint import load_sparse_layers
from sparse24.kernels.checkpoint.compress import compress_checkpoint
from sparse24.kernels.cli import main as cli
from sparse24.kernels.model_set import VARIANTS, make_model_set
from sparse24.kernels import reference


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("set")
    return root, make_model_set(root, shape="tiny", device="cpu", progress=False)


def test_tiny_set_has_every_variant_and_a_manifest(tiny_set):
    root, manifest = tiny_set
    assert set(manifest["variants"]) == set(VARIANTS)
    assert json.loads((root / "model_set.json").read_text())["steps"].keys() == set(VARIANTS)
    assert "no quality signal" in manifest["note"]


def test_fp8_dynamic_is_the_dense_redhat_layout(tiny_set):
    root, _ = tiny_set
    qc = json.loads((root / "fp8" / "config.json").read_text())["quantization_config"]
    assert "sparsity_config" not in qc and qc["format"] == "float-quantized" and qc["ignore"] == ["lm_head"]
    group = qc["config_groups"]["group_0"]
    assert group["weights"]["strategy"] == "channel" and group["input_activations"]["strategy"] == "token"
    assert group["input_activations"]["dynamic"] is True
    # unpruned: the fp8 weight is per-channel FP8 of the dense weight, no zero pattern imposed
    dense = load_file(root / "bf16" / "model.safetensors")["model.layers.0.mlp.up_proj.weight"]
    fp8 = load_file(root / "fp8" / "model.safetensors")
    w, s = reference.quantize_weight_per_channel_fp8(dense)
    assert torch.equal(fp8["model.layers.0.mlp.up_proj.weight"].view(torch.uint8), w.view(torch.uint8))
    assert torch.equal(fp8["model.layers.0.mlp.up_proj.weight_scale"], s)


def test_both_sparse_formats_hold_the_same_2of4_weights(tiny_set):
    root, _ = tiny_set
    a, b = load_sparse_layers(root / "sparse24"), load_sparse_layers(root / "sparse24-dense")
    assert a.keys() == b.keys() and len(a) == 14
    for name in a:
        assert torch.equal(a[name].dense_fp8().view(torch.uint8), b[name].dense_fp8().view(torch.uint8)), name


def test_random_weights_are_seeded_sharded_and_loadable(tmp_path, tiny_set, monkeypatch):
    import shutil

    from transformers import AutoModelForCausalLM

    from sparse24.kernels import tiny_model

    root, _ = tiny_set
    monkeypatch.setattr(tiny_model, "SHARD_BYTES", 1_000_000)
    dirs = []
    for name in ("a", "b"):
        d = tmp_path / name
        shutil.copytree(root / "bf16", d)
        for f in d.glob("*.safetensors"):
            f.unlink()
        tiny_model.write_random_weights(d, seed=7, device="cpu", progress=False)
        dirs.append(d)
    index = json.loads((dirs[0] / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    ma, mb = (AutoModelForCausalLM.from_pretrained(d) for d in dirs)
    for (n, pa), pb in zip(ma.named_parameters(), mb.parameters()):
        assert torch.equal(pa, pb), n
    w = ma.model.layers[0].mlp.down_proj.weight.float()
    assert abs(float(w.std()) - 0.02) < 0.002 and torch.equal(ma.model.norm.weight, torch.ones_like(ma.model.norm.weight))
    # the compressor reads the sharded model and writes a sharded checkpoint with an index
    out = compress_checkpoint(dirs[0], tmp_path / "c", progress=False, device="auto")
    assert out.sparsity == 0.5 and (tmp_path / "c" / "model.safetensors.index.json").is_file()


def test_cli_model_set_rejects_bad_requests(tmp_path, capsys):
    assert cli(["model-set", str(tmp_path / "x"), "--shape", "tiny", "--layers", "2"]) == 2
    assert "only for the 8B shape" in capsys.readouterr().err
    assert cli(["compress", str(tmp_path / "nope"), str(tmp_path / "o"), "--device", "cuda:7"]) == 2
