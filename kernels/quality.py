"""Quality check: perplexity of a dense model vs its 2:4 sparse FP8 checkpoint (`sparse24 quality`).

The sparse checkpoint is run two ways on CPU with HF transformers' Llama:
* "sparse-fp8": every 2:4 layer replaced by SparseFp8Linear (per-token FP8 activations, the product's math);
* "dequantized": the same weights dequantized to dense (w_fp8 * scale), activations left unquantized.
Their difference isolates activation quantization; the gap to the dense model is pruning + weight FP8.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import safe_open

from .checkpoint.loader import CheckpointReader, safetensors_files
from .linear import pack_sparse_fp8_weight
from .module import SparseFp8Linear

CORPUS_PATH = Path(__file__).parent / "data" / "corpus.txt"
MODES = ("sparse-fp8", "dequantized")


def _set_module(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def load_sparse_checkpoint_as_hf(model_dir: str | Path, mode: str = "sparse-fp8", dtype=torch.float32,
                                 device: str = "cpu"):
    """A transformers LlamaForCausalLM running a 2:4 FP8 checkpoint (see module docstring for `mode`).

    The 2:4 layers always run the exact reference math (also on a GPU `device`, where it is just faster)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    reader = CheckpointReader(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    sparse = set(reader.layer_names)
    state = {}
    for f in safetensors_files(Path(model_dir)):
        with safe_open(f, "pt") as sf:
            for name in sf.keys():
                if name.rsplit(".", 1)[0] not in sparse:
                    state[name] = sf.get_tensor(name).to(device=device, dtype=dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected_missing = {f"{n}.weight" for n in sparse} | {f"{n}.bias" for n in sparse}
    if unexpected or set(missing) - expected_missing:
        raise ValueError(f"{model_dir}: tensors do not match the model: missing {sorted(set(missing) - expected_missing)[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for layer in reader:
        linear = model.get_submodule(layer.name)
        bias = linear.bias.detach() if linear.bias is not None else None
        w_fp8, scale = layer.dense_fp8().to(device), layer.scale.to(device)
        if mode == "sparse-fp8":
            packed = pack_sparse_fp8_weight(w_fp8, scale, backend="reference")
            _set_module(model, layer.name, SparseFp8Linear(packed, bias))
        else:
            linear.weight.data = (w_fp8.float() * scale.reshape(-1, 1)).to(dtype)
    return model.eval()


def load_dense_hf(model_dir: str | Path, dtype=torch.bfloat16, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    # .to(), not device_map: device_map needs `accelerate`, which the CPU install does not have.
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()


@torch.no_grad()
def perplexity(model, tokenizer, text: str, context: int = 256, max_tokens: int = 4096) -> float:
    """Token-level perplexity over non-overlapping windows of `context` tokens (first max_tokens tokens)."""
    # ~4 characters per token here; cut the text first so the tokenizer never sees more than needed.
    ids = tokenizer(text[: max_tokens * 8], return_tensors="pt").input_ids[0][:max_tokens]
    nll, count = 0.0, 0
    for start in range(0, len(ids) - 1, context):
        window = ids[start:start + context + 1]
        if len(window) < 2:
            break
        logits = model(window[None, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0], window[1:], reduction="sum")
        nll += float(loss)
        count += len(window) - 1
    return math.exp(nll / count)


def quality_report(dense_dir: str | Path, sparse_dir: str | Path, max_tokens: int = 4096) -> dict:
    """Perplexity of dense bf16, the sparse checkpoint dequantized, and the sparse FP8 path, on the bundled text."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(dense_dir)
    text = CORPUS_PATH.read_text()[-200_000:]  # the end of the corpus; the tokenizer trained on all of it
    report = {"text": CORPUS_PATH.name, "max_tokens": max_tokens,
              "dense_bf16": perplexity(load_dense_hf(dense_dir), tokenizer, text, max_tokens=max_tokens)}
    for mode in MODES:
        model = load_sparse_checkpoint_as_hf(sparse_dir, mode)
        report[mode.replace("-", "_")] = perplexity(model, tokenizer, text, max_tokens=max_tokens)
    report["ratio_sparse_fp8_vs_dense"] = report["sparse_fp8"] / report["dense_bf16"]
    return report


def render_quality(report: dict) -> str:
    return json.dumps(report, indent=2)
