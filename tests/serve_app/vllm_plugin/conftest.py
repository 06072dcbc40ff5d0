"""Tiny 2:4 FP8 checkpoints for the vLLM plugin tests: good ones in every supported layout, and bad ones.

All are derived from one deterministic tiny Llama (kernels.tiny_model, fp32) through the lead's compressor
(kernels.checkpoint.compress_checkpoint); variants edit its tensors/config the way real checkpoints differ.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sparse24.kernels import reference
from sparse24.kernels.checkpoint import compress_checkpoint
from sparse24.kernels.tiny_model import TinyLlamaSpec, make_tiny_llama

# config.json `quantization_config` of RedHatAI/Sparse-Llama-3.1-8B-2of4-FP8-dynamic, key for key
# (llm-compressor output: format "dense" sparsity, channel FP8 weights, dynamic per-token FP8 activations).
REDHAT_QUANTIZATION_CONFIG = {
    "config_groups": {
        "group_0": {
            "input_activations": {
                "actorder": None, "block_structure": None, "dynamic": True, "group_size": None, "num_bits": 8,
                "observer": None, "observer_kwargs": {}, "strategy": "token", "symmetric": True, "type": "float",
            },
            "output_activations": None,
            "targets": ["Linear"],
            "weights": {
                "actorder": None, "block_structure": None, "dynamic": False, "group_size": None, "num_bits": 8,
                "observer": "minmax", "observer_kwargs": {}, "strategy": "channel", "symmetric": True,
                "type": "float",
            },
        }
    },
    "format": "float-quantized",
    "global_compression_ratio": 1.4593599124592485,
    "ignore": ["lm_head"],
    "kv_cache_scheme": None,
    "quant_method": "compressed-tensors",
    "quantization_status": "compressed",
    "sparsity_config": {
        "format": "dense",
        "global_sparsity": 0.4503006353712525,
        "ignore": ["lm_head"],
        "registry_requires_subclass": False,
        "sparsity_structure": "2:4",
        "targets": ["Linear"],
    },
}


def _edit(src: Path, dst: Path, tensors=None, config=None) -> Path:
    """Copy checkpoint src to dst, then let `tensors(dict)` / `config(dict)` edit it in place."""
    shutil.copytree(src, dst)
    if tensors is not None:
        state = load_file(dst / "model.safetensors")
        tensors(state)
        save_file(state, dst / "model.safetensors", metadata={"format": "pt"})
    if config is not None:
        cfg = json.loads((dst / "config.json").read_text())
        config(cfg)
        (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst


def _to_per_tensor(state: dict) -> None:
    """Requantize every 2:4 layer with one FP8 scale per tensor (zeros stay zero, so 2:4 is kept)."""
    for name in [n for n in state if n.endswith(".weight_scale")]:
        prefix = name[: -len(".weight_scale")]
        w = state[f"{prefix}.weight"].float() * state[name]
        s = w.abs().amax() / reference.FP8_E4M3_MAX
        state[f"{prefix}.weight"] = torch.clamp(w / s, -448, 448).to(torch.float8_e4m3fn)
        state[name] = s.reshape(1)


def _dense_fp8_unpruned(state: dict, dense_model: Path) -> None:
    """Replace the 2:4 weights by per-channel FP8 of the original dense (not pruned) weights."""
    original = load_file(dense_model / "model.safetensors")
    for name in [n for n in state if n.endswith(".weight_scale")]:
        prefix = name[: -len(".weight_scale")]
        state[f"{prefix}.weight"], state[name] = reference.quantize_weight_per_channel_fp8(original[f"{prefix}.weight"])


def _add_input_scales(state: dict) -> None:
    for name in [n for n in state if n.endswith(".weight_scale")]:
        state[name[: -len("weight_scale")] + "input_scale"] = torch.tensor([4.0 / reference.FP8_E4M3_MAX])


def _break_2of4(state: dict) -> None:
    w = state["model.layers.0.self_attn.k_proj.weight"].clone()
    w[5, 8:12] = torch.tensor([1.0, 2.0, 3.0, 0.0]).to(torch.float8_e4m3fn)  # 3 non-zeros in one group
    state["model.layers.0.self_attn.k_proj.weight"] = w


def _set_redhat_config(cfg: dict) -> None:
    cfg["quantization_config"] = json.loads(json.dumps(REDHAT_QUANTIZATION_CONFIG))
    cfg["torch_dtype"] = "bfloat16"  # as published; tests pass dtype explicitly


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """name -> checkpoint dir. 'tiny' is the dense fp32 source model; the others are compressed-tensors."""
    root = tmp_path_factory.mktemp("sparse24_ckpts")
    tiny = make_tiny_llama(root / "tiny", TinyLlamaSpec(dtype="float32"))
    out = {"tiny": tiny}
    for fmt, name in (("sparse-24-bitmask", "bitmask"), ("dense", "dense")):
        compress_checkpoint(tiny, root / name, sparsity_format=fmt, progress=False)
        out[name] = root / name
    dense, bitmask = out["dense"], out["bitmask"]
    out["redhat_layout"] = _edit(dense, root / "redhat_layout", tensors=lambda s: [
        s.__setitem__(n, s[n].to(torch.bfloat16)) for n in list(s) if n.endswith(".weight_scale")],
        config=_set_redhat_config)
    out["per_tensor"] = _edit(dense, root / "per_tensor", tensors=_to_per_tensor, config=lambda c: c[
        "quantization_config"]["config_groups"]["group_0"]["weights"].__setitem__("strategy", "tensor"))
    out["dense_fp8"] = _edit(dense, root / "dense_fp8", tensors=lambda s: _dense_fp8_unpruned(s, tiny),
                             config=lambda c: c["quantization_config"].pop("sparsity_config"))
    out["bad_not_2of4"] = _edit(dense, root / "bad_not_2of4", tensors=_break_2of4)
    out["bad_scale_shape"] = _edit(bitmask, root / "bad_scale_shape", tensors=lambda s: s.__setitem__(
        "model.layers.1.mlp.down_proj.weight_scale", s["model.layers.1.mlp.down_proj.weight_scale"][:128]))
    out["bad_missing_bitmask"] = _edit(bitmask, root / "bad_missing_bitmask",
                                       tensors=lambda s: s.pop("model.layers.1.mlp.up_proj.bitmask"))
    out["static_act"] = _edit(out["per_tensor"], root / "static_act", tensors=_add_input_scales, config=lambda c: c[
        "quantization_config"]["config_groups"]["group_0"]["input_activations"].update(strategy="tensor", dynamic=False))
    return out
