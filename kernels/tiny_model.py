"""Deterministic model directories without a model hub.

* `make_tiny_llama(out_dir)`: a small HF Llama (random weights from a seed) plus a byte-level BPE tokenizer
  trained locally on the bundled corpus. Every linear has K a multiple of 64 and N a multiple of 128,
  so every GEMM shape is legal for the sparse kernels.
* `write_llama_8b_config(out_dir)`: config.json (Llama-3.1-8B dimensions) + the local tokenizer, no weights:
  GPU benchmarks generate random weights on the fly.
* `write_random_weights(out_dir)`: seeded random bf16 weights for such a config (HF's init: normal(0, 0.02),
  norms 1), generated on the GPU when there is one, in 5 GB safetensors shards: an 8B-shaped model vLLM
  can load, in seconds. Random weights carry no quality signal: use them for speed and numerics only.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import BaseModel, Field, model_validator

CORPUS_PATH = Path(__file__).parent / "data" / "corpus.txt"
BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
# A minimal Llama-3-style chat template: /v1/chat/completions needs one (FACTS.md).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class TinyLlamaSpec(BaseModel):
    """Dimensions of the tiny model. Defaults make a ~1.3 M-parameter model that loads in seconds."""

    hidden_size: int = Field(256, ge=64, multiple_of=64)
    intermediate_size: int = Field(512, ge=64, multiple_of=128)
    num_hidden_layers: int = Field(2, ge=1, le=64)
    num_attention_heads: int = Field(4, ge=1)
    num_key_value_heads: int = Field(2, ge=1)
    vocab_size: int = Field(1024, ge=300, le=65536)
    max_position_embeddings: int = Field(2048, ge=128)
    seed: int = 0
    dtype: str = Field("bfloat16", pattern="^(bfloat16|float16|float32)$")

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyLlamaSpec":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        return self


LLAMA_31_8B = dict(
    hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
    rms_norm_eps=1e-5,
)


def build_tokenizer(out_dir: Path, vocab_size: int):
    """Train a byte-level BPE on the bundled corpus and save it as a HF fast tokenizer in out_dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[BOS, EOS, PAD], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS_PATH.read_text().splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def _llama_config(tokenizer, **dims):
    from transformers import LlamaConfig

    return LlamaConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, **dims,
    )


def make_tiny_llama(out_dir: str | Path, spec: TinyLlamaSpec | None = None) -> Path:
    """Write a deterministic tiny HF Llama (config, safetensors, tokenizer) to out_dir and return it."""
    from transformers import LlamaForCausalLM

    spec = spec or TinyLlamaSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, spec.vocab_size)
    dims = spec.model_dump(exclude={"seed", "dtype"})
    dims["vocab_size"] = len(tokenizer)
    config = _llama_config(tokenizer, **dims)
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config).to(getattr(torch, spec.dtype))
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)
    (out / "tiny_model_spec.json").write_text(json.dumps(spec.model_dump(), indent=2))
    return out


def write_llama_8b_config(out_dir: str | Path, num_hidden_layers: int | None = None) -> Path:
    """Write a Llama-3.1-8B-shaped config.json plus the local tokenizer (no weights) to out_dir.

    `num_hidden_layers` keeps every 8B matrix shape but fewer decoder layers (numerics at the real GEMM shapes
    without 32 layers of a random network amplifying every rounding difference)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, 1024)
    dims = dict(LLAMA_31_8B)
    if num_hidden_layers is not None:
        dims["num_hidden_layers"] = int(num_hidden_layers)
    config = _llama_config(tokenizer, **dims)
    config.vocab_size = LLAMA_31_8B["vocab_size"]  # 8B's real vocabulary size: lm_head cost matters for speed
    config.dtype = "bfloat16"
    config.save_pretrained(out)
    return out


SHARD_BYTES = 5 * 2**30


def write_random_weights(model_dir: str | Path, seed: int = 0, device: str = "auto", progress: bool = True) -> int:
    """Write seeded random bf16 weights for the config.json in model_dir; returns bytes written.

    The parameter names and shapes are transformers' LlamaForCausalLM's (built on the meta device, no memory).
    Same seed and device type -> same weights.
    """
    from safetensors.torch import save_file
    from tqdm import tqdm
    from transformers import AutoConfig, AutoModelForCausalLM

    out = Path(model_dir)
    config = AutoConfig.from_pretrained(out)
    with torch.device("meta"):
        shapes = [(n, tuple(p.shape)) for n, p in AutoModelForCausalLM.from_config(config).named_parameters()]
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    gen = torch.Generator(device=dev).manual_seed(seed)
    std = float(getattr(config, "initializer_range", 0.02))
    shards: list[dict[str, torch.Tensor]] = [{}]
    size, total = 0, 0
    for name, shape in tqdm(shapes, desc=f"random weights ({dev.type})", unit="tensor", disable=not progress):
        if name.endswith("norm.weight"):
            t = torch.ones(shape, dtype=torch.bfloat16)
        else:
            t = torch.empty(shape, dtype=torch.float32, device=dev).normal_(0.0, std, generator=gen)
            t = t.to(torch.bfloat16).cpu()
        nbytes = t.numel() * 2
        if size and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
        total += nbytes
    for old in out.glob("*.safetensors"):
        old.unlink()
    weight_map = {}
    for i, tensors in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors" if len(shards) > 1 else "model.safetensors"
        save_file(tensors, out / fname, metadata={"format": "pt"})
        weight_map.update({k: fname for k in tensors})
    if len(shards) > 1:
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return total
