"""Dense HF Llama directory -> FP8 compressed-tensors checkpoint (`sparse24 compress`).

Scheme `sparse24` (default): 2:4 prune + FP8, our product's checkpoint. Scheme `fp8-dynamic`: FP8 only (the
layout of RedHatAI's dense `*-FP8-dynamic` models), the dense baseline that vLLM runs on its own FP8 path.
Both quantize weights per output channel and declare dynamic per-token FP8 activations. `device="cuda"` does
the pruning and quantization on a GPU (an 8B model in about a minute instead of many).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .. import reference
from .config import build_quantization_config
from .format import DEFAULT_IGNORE, storage_format
from .loader import safetensors_files
from .prune import get_pruner

# Llama's linear layers inside decoder blocks; embeddings, norms and lm_head stay dense.
TARGET_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                 "chat_template.jinja", "tokenizer.model", "tiny_model_spec.json")


@dataclass
class CompressSummary:
    layers: int
    sparsity: float  # fraction of zeros over the targeted layers' weights
    bytes_on_disk: int
    bytes_dense_bf16: int
    bytes_dense_fp8: int

    def render(self) -> str:
        mb = lambda b: f"{b / 2**20:.2f} MiB"  # noqa: E731
        return (f"compressed {self.layers} linear layers, 2:4 sparsity {self.sparsity:.1%}\n"
                f"size on disk {mb(self.bytes_on_disk)}  (dense bf16 {mb(self.bytes_dense_bf16)}, "
                f"dense fp8 {mb(self.bytes_dense_fp8)}; {self.bytes_dense_bf16 / self.bytes_on_disk:.2f}x smaller "
                f"than bf16, {self.bytes_dense_fp8 / self.bytes_on_disk:.2f}x than fp8)")


def _is_target(tensor_name: str, ignore: list[str]) -> bool:
    if not tensor_name.endswith(".weight"):
        return False
    module = tensor_name[: -len(".weight")]
    return module.endswith(TARGET_SUFFIXES) and not any(module == i or module.endswith("." + i) for i in ignore)


SCHEMES = ("sparse24", "fp8-dynamic")


def compress_tensor(w: torch.Tensor, sparsity_format: str | None, pruner: str = "magnitude") -> dict[str, torch.Tensor]:
    """One dense weight [N, K] -> the checkpoint tensors of its layer, keyed by suffix (no prefix).

    `sparsity_format=None`: no pruning (dense FP8). Works on any device; returns host tensors.
    """
    wf = w.float()
    if sparsity_format is not None:
        wf = wf * get_pruner(pruner)(w)
    w_fp8, scale = reference.quantize_weight_per_channel_fp8(wf)
    # No sparsity (the FP8-dynamic baseline) stores its weight exactly as the `dense` format does.
    out = storage_format(sparsity_format or "dense", "sparsity format").encode(w_fp8)
    return {"weight_scale": scale.cpu(), **out}


def resolve_device(device: str) -> torch.device:
    """`auto` -> the GPU if torch sees one, else the CPU; anything else must be a usable torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA GPU on this machine")
    return dev


def compress_checkpoint(
    model_dir: str | Path, out_dir: str | Path, sparsity_format: str = "sparse-24-bitmask",
    pruner: str = "magnitude", ignore: list[str] | None = None, progress: bool = True,
    scheme: str = "sparse24", device: str = "cpu",
) -> CompressSummary:
    """Prune 2:4 along K (scheme sparse24), quantize to FP8 (per-channel weights, per-token dynamic
    activations), write out_dir. `device` ("cpu", "cuda", "auto") is where the arithmetic runs."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {SCHEMES}")
    fmt = sparsity_format if scheme == "sparse24" else None
    dev = resolve_device(device)
    src, out = Path(model_dir), Path(out_dir)
    config_path = src / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; MODEL_DIR must be a Hugging Face model directory")
    config = json.loads(config_path.read_text())
    if "quantization_config" in config:
        raise ValueError(f"{config_path}: the model is already quantized; give a dense (bf16/fp16/fp32) model")
    ignore = list(ignore or DEFAULT_IGNORE)
    get_pruner(pruner)  # fail before any work on a bad name
    files = safetensors_files(src)
    out.mkdir(parents=True, exist_ok=True)

    with_names = []
    for f in files:
        with safe_open(f, "pt") as sf:
            with_names.append((f, list(sf.keys())))
    total_targets = sum(_is_target(n, ignore) for _, names in with_names for n in names)
    desc = "2:4 prune + fp8" if fmt is not None else "fp8"
    bar = tqdm(total=total_targets, desc=f"{desc} ({dev.type})", unit="layer", disable=not progress)
    layers, zeros, numel, bf16_bytes, fp8_bytes = 0, 0, 0, 0, 0
    weight_map = {}
    for f, names in with_names:
        tensors = {}
        with safe_open(f, "pt") as sf:
            for name in names:
                t = sf.get_tensor(name)
                bf16_bytes += t.numel() * 2
                if not _is_target(name, ignore):
                    tensors[name] = t.contiguous()
                    fp8_bytes += t.numel() * t.element_size()
                    continue
                if t.dim() != 2 or t.shape[1] % 4:
                    raise ValueError(f"{f.name}: {name} has shape {tuple(t.shape)}; 2:4 needs a 2-D weight with K % 4 == 0")
                prefix = name[: -len(".weight")]
                for suffix, v in compress_tensor(t.to(dev), fmt, pruner).items():
                    tensors[f"{prefix}.{suffix}"] = v
                fp8_bytes += t.numel() + t.shape[0] * 4
                zeros += t.numel() // 2 if fmt is not None else 0
                numel += t.numel()
                layers += 1
                bar.update(1)
        save_file(tensors, out / f.name, metadata={"format": "pt"})
        weight_map.update({k: f.name for k in tensors})
    bar.close()
    if len(files) > 1:
        (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))

    disk = sum((out / f.name).stat().st_size for f in files)
    sparsity = zeros / max(numel, 1)
    config["quantization_config"] = build_quantization_config(fmt, sparsity, bf16_bytes / disk, ignore)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in _COPIED_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    return CompressSummary(layers, sparsity, disk, bf16_bytes, fp8_bytes)
