"""Prompts hit the exact server-side token count with the served model's own tokenizer."""
import pytest

from sparse24.loadtest.prompts import PromptSynthesizer, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_dense_dir):
    return load_tokenizer(tiny_dense_dir)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_prompts_have_exactly_the_requested_token_count(tokenizer, api):
    synth = PromptSynthesizer(tokenizer, api=api, seed=1)
    sizes = list(range(synth.overhead + 1, synth.overhead + 60)) + [640, 1280]
    for n in sizes:
        assert synth.count(synth.make(n)) == n
    if api == "completions":  # count() is what the server counts: the plain tokenizer with its specials
        text = synth.make(100)
        assert len(tokenizer(text)["input_ids"]) == 100


def test_prompts_differ_so_the_prefix_cache_cannot_skip_prefill(tokenizer):
    synth = PromptSynthesizer(tokenizer, seed=0)
    prompts = [synth.make(64) for _ in range(20)]
    assert len({p[:20] for p in prompts}) == 20


def test_prompt_shorter_than_the_chat_template_is_refused(tokenizer):
    synth = PromptSynthesizer(tokenizer, api="chat")
    with pytest.raises(ValueError, match="chat format itself"):
        synth.make(synth.overhead)


def test_missing_tokenizer_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_tokenizer(tmp_path / "nowhere")
