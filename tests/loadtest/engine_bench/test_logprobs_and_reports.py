"""Pure parts of the engine benchmark: teacher-forced comparison, Tables 3/4 report, tables.yaml."""
from __future__ import annotations

import math

import pytest
import torch

from sparse24.loadtest.engine_bench import logprobs as lp
from sparse24.loadtest.engine_bench import tables_report
from sparse24.loadtest.engine_bench.tables_config import TablesConfig, load_tables_config


def _scores(actual, top1, top1_lp=None, margin=None):
    n = len(actual)
    return [lp.PositionScores(actual=list(actual), top1=list(top1), top1_lp=list(top1_lp or actual),
                              margin=list(margin if margin is not None else [1.0] * n))]


def test_identical_scores_pass_and_a_shift_beyond_the_bound_fails():
    ref = _scores([-3.0, -2.0, -5.0], [1, 2, 3])
    assert lp.compare(ref, ref).ok
    shifted = _scores([-3.05, -2.05, -5.05], [1, 2, 3])
    c = lp.compare(shifted, ref)
    assert not c.ok and c.mean_abs == pytest.approx(0.05) and c.tolerance_mean_abs == lp.MEAN_ABS_NATS


def test_top1_flips_pass_only_at_near_ties():
    ref_tie = _scores([-3.0, -2.0], [1, 2], margin=[0.01, 1.0])
    ref_clear = _scores([-3.0, -2.0], [1, 2], margin=[0.5, 1.0])
    engine = _scores([-3.0, -2.0], [9, 2])
    assert lp.compare(engine, ref_tie).ok
    c = lp.compare(engine, ref_clear)
    assert not c.ok and c.top1_disagree_outside_ties == 1 and c.top1_agree == 0.5


def test_quant_effect_is_reported_for_scale():
    ref, unq = _scores([-3.0, -2.0], [1, 2]), _scores([-3.2, -1.8], [1, 2])
    assert lp.compare(ref, ref, unq).quant_effect_mean_abs == pytest.approx(0.2)


def test_reference_scores_are_log_softmax_of_the_next_token():
    class Toy(torch.nn.Module):
        def forward(self, x):
            logits = torch.nn.functional.one_hot(x, 5).float() * 3.0
            return type("O", (), {"logits": logits})

    s = lp.reference_scores(Toy(), [[0, 0, 1, 4]])[0]
    expect_hit = float(torch.log_softmax(torch.tensor([3.0, 0, 0, 0, 0]), 0)[0])
    assert s.actual[0] == pytest.approx(expect_hit) and s.top1 == [0, 0, 1]
    assert s.margin[0] == pytest.approx(3.0) and len(s.actual) == 3


def test_random_sequences_are_deterministic_and_in_range():
    a, b = lp.random_sequences(2, 16, 100, seed=3), lp.random_sequences(2, 16, 100, seed=3)
    assert a == b and all(3 <= t < 100 for s in a for t in s)


def _engine(variant_scale: float) -> dict:
    cases = {"chat": (512, 256), "rag": (10240, 1536)}
    return {
        "latency": {c: {"median_s": 1.0 * variant_scale, "prompt_tokens": p, "output_tokens": o} for c, (p, o) in cases.items()},
        "throughput": {c: {"output_tokens_per_s": 1000 / variant_scale, "requests": 8, "prompt_tokens": p,
                           "output_tokens": o} for c, (p, o) in cases.items()},
        "meta": {"gpus": ["NVIDIA H200"], "versions": {"vllm": "0.26.0"}}, "engine": {"load_s": 60},
        "engine_kwargs": {"dtype": "bfloat16"},
    }


def test_tables_report_ratios_geomeans_and_targets(tmp_path):
    rep = tables_report.build({"bf16": _engine(2.0), "fp8": _engine(1.25), "sparse24": _engine(1.0)})
    assert rep["table3_latency"]["chat"]["vs_bf16"] == pytest.approx(2.0)
    assert rep["table4_throughput"]["rag"]["vs_fp8"] == pytest.approx(1.25)
    s = rep["summary"]
    assert s["latency_vs_bf16"]["met"] and s["throughput_vs_fp8"]["met"]
    assert s["latency_vs_fp8"]["geomean"] == pytest.approx(1.25) and not s["latency_vs_fp8"]["met"]
    md = tables_report.render_markdown(rep, "T")
    assert "| chat | 512/256 |" in md and "NO (by 0.10)" in md
    tables_report.plot(rep, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="missing engine results"):
        tables_report.build({"bf16": _engine(2.0)})


def test_tables_yaml_takes_token_counts_from_the_load_test_profiles():
    cfg = load_tables_config()
    by = {u.name: u for u in cfg.use_cases}
    assert (by["long_context_rag"].prompt_tokens, by["long_context_rag"].output_tokens) == (10240, 1536)
    assert len(by) == 6 and cfg.engine["max_model_len"] >= 10240 + 1536
    with pytest.raises(ValueError, match="unknown use cases"):
        cfg.only(["nope"])


def test_tables_config_refuses_a_use_case_longer_than_the_context():
    with pytest.raises(ValueError, match="exceed engine.max_model_len"):
        TablesConfig.model_validate({"engine": {"max_model_len": 100}, "use_cases": [
            {"name": "x", "prompt_tokens": 90, "output_tokens": 20, "throughput_requests": 1}]})
    assert math.isnan(tables_report._geomean([]))


def test_an_fp32_reference_widens_the_bounds_to_the_rounding_floor():
    ref = _scores([-3.0, -2.0, -5.0, -1.0], [1, 2, 3, 4], margin=[0.3, 0.3, 0.15, 0.3])
    engine = _scores([-3.1, -2.1, -4.9, -0.9], [1, 2, 9, 4])
    assert not lp.compare(engine, ref).ok
    fp32 = _scores([-3.2, -1.8, -5.2, -1.2], [1, 2, 3, 4])
    c = lp.compare(engine, ref, ref_fp32=fp32)
    assert c.ok and c.rounding_floor_mean_abs == pytest.approx(0.2) and c.tolerance_mean_abs == pytest.approx(0.4)


def test_the_near_tie_margin_widens_to_where_the_reference_flips_against_its_own_fp32_run():
    # the bf16 reference picks another top-1 than its fp32 run at margin 0.4: an engine flip at 0.6 is rounding,
    # one at 0.9 (> 2 x 0.4) is not
    ref = _scores([-3.0, -2.0, -1.0], [1, 2, 3], margin=[0.4, 0.6, 0.9])
    fp32 = _scores([-3.0, -2.0, -1.0], [7, 2, 3])
    c = lp.compare(_scores([-3.0, -2.0, -1.0], [1, 9, 3]), ref, ref_fp32=fp32)
    assert c.ok and c.near_tie_nats == pytest.approx(0.8)
    c = lp.compare(_scores([-3.0, -2.0, -1.0], [1, 2, 9]), ref, ref_fp32=fp32)
    assert not c.ok and c.top1_disagree_outside_ties == 1
    # without an fp32 run the fixed margin applies
    assert lp.compare(_scores([-3.0, -2.0, -1.0], [1, 9, 3]), ref).near_tie_nats == lp.NEAR_TIE_NATS
