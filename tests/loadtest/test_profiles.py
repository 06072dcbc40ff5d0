"""Workload profiles as data, their scaling, and sweep-config validation errors that name the bad value."""
import pytest

from sparse24.loadtest.profiles import load_profiles
from sparse24.loadtest.sweep import SweepConfig


def test_bundled_profiles_are_the_seed_use_cases_and_scale_for_the_tiny_model():
    ps = load_profiles()
    assert set(ps.profiles) == {"code_completion", "docstring_generation", "instruction_following",
                                "multi_turn_chat", "summarization", "long_context_rag"}
    chat = ps.get("multi_turn_chat")
    assert (chat.prompt_tokens, chat.output_tokens) == (512, 256)
    tiny = ps.get("multi_turn_chat", "tiny")
    assert (tiny.prompt_tokens, tiny.output_tokens) == (64, 32)
    rag = ps.get("long_context_rag", "tiny")
    assert rag.prompt_tokens + rag.output_tokens <= 2048  # fits the tiny model's context


def test_unknown_profile_or_scale_is_named():
    ps = load_profiles()
    with pytest.raises(KeyError, match="nope"):
        ps.get("nope")
    with pytest.raises(KeyError, match="huge"):
        ps.get("multi_turn_chat", "huge")


def test_custom_profile_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("profiles:\n  mine: {prompt_tokens: 100, output_tokens: 10}\nscales:\n  half: {factor: 0.5}\n")
    assert load_profiles(f).get("mine", "half").prompt_tokens == 50


_BASE = dict(deployments=[dict(name="a", base_url="http://127.0.0.1:8000")], profiles=["multi_turn_chat"],
             sla=dict(target_ms=50))


@pytest.mark.parametrize("change, match", [
    (dict(), "exactly one of"),
    (dict(qps=[1], auto_qps=dict()), "exactly one of"),
    (dict(qps=[1, -2]), "positive"),
    (dict(qps=[1], sla=dict(metric="itl_p95_ms", target_ms=50)), "itl_p95_ms"),
    (dict(qps=[1], baseline="b"), "baseline"),
    (dict(qps=[1], deployments=[dict(name="a", base_url="u"), dict(name="a", base_url="u")]), "unique"),
    (dict(qps=[1], steady=dict(max_lateness=3)), "max_lateness"),
])
def test_bad_sweep_configs_are_rejected_with_the_value_named(change, match):
    with pytest.raises(Exception, match=match):
        SweepConfig.model_validate({**_BASE, **change})


def test_shipped_sweep_configs_validate():
    from pathlib import Path

    import sparse24.loadtest as lt

    configs = sorted((Path(lt.__file__).parent / "configs").glob("*.yaml"))
    assert len(configs) >= 2
    for c in configs:
        SweepConfig.load(c)


def test_tokenizer_dir_is_the_reported_root_when_local_and_unchanged_when_unknown(tmp_path):
    from sparse24.loadtest.server import local_model_dir

    assert local_model_dir(str(tmp_path)) == str(tmp_path)  # vLLM's own server reports the model path
    assert local_model_dir("org/some-hub-model") == "org/some-hub-model"
