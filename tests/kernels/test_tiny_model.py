"""Tiny models are deterministic, kernel-legal, and come with a working tokenizer and chat template."""
import json

import pytest
from pydantic import ValidationError

from sparse24.kernels import layout
from sparse24.kernels.cli import main as cli
from sparse24.kernels.tiny_model import LLAMA_31_8B, TinyLlamaSpec, make_tiny_llama


def test_same_seed_gives_identical_files(tiny_dense_dir, tmp_path):
    again = make_tiny_llama(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_dense_dir / name).read_bytes(), name


def test_every_linear_shape_is_legal_for_the_sparse_kernels(tiny_dense_dir):
    c = json.loads((tiny_dense_dir / "config.json").read_text())
    head = c["hidden_size"] // c["num_attention_heads"]
    shapes = {  # (N, K) of each linear
        "qkv": ((c["num_attention_heads"] + 2 * c["num_key_value_heads"]) * head, c["hidden_size"]),
        "o": (c["hidden_size"], c["hidden_size"]),
        "gate_up": (2 * c["intermediate_size"], c["hidden_size"]),
        "down": (c["hidden_size"], c["intermediate_size"]),
    }
    for name, (n, k) in shapes.items():
        assert k % layout.K_ALIGNMENT == 0 and n % 128 == 0, (name, n, k)


def test_tokenizer_round_trips_text_and_has_chat_template(tiny_dense_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dense_dir)
    text = "Return a new deque object initialized left-to-right."
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith(tok.bos_token) and prompt.endswith("<|assistant|>\n")


def test_spec_rejects_illegal_dimensions():
    with pytest.raises(ValidationError, match="multiple of 64"):
        TinyLlamaSpec(hidden_size=200)
    with pytest.raises(ValidationError, match="not divisible"):
        TinyLlamaSpec(hidden_size=320, num_attention_heads=3, num_key_value_heads=1)


def test_8b_shaped_config_has_llama_31_8b_dims_and_no_weights(tmp_path, capsys):
    assert cli(["tiny-model", str(tmp_path / "8b"), "--shape", "llama-3.1-8b"]) == 0
    c = json.loads((tmp_path / "8b" / "config.json").read_text())
    assert {k: c[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")} == {
        k: LLAMA_31_8B[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")}
    assert not list((tmp_path / "8b").glob("*.safetensors"))
