"""CPU tests of the model benchmark (loadtest/model_bench/model_*.py) with a tiny config.

The bf16 variant's forward (prefill + KV-cache decode) must match HF transformers' Llama; the three
variants must share every tensor except the linear layers; the bench command must run end to end.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from sparse24.kernels import layout, reference
from sparse24.loadtest.model_bench import model_report
from sparse24.loadtest.model_bench.model_linears import (Bf16Linear, Fp8DenseLinear, SparseFp8Linear, make_linear,
                                                  prune_2of4_magnitude)
from sparse24.loadtest.model_bench.model_llama import (KVCache, ModelArgs, Transformer, build_variants, random_weights,
                                                weights_from_hf)


def _hf_tiny(dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1024, max_position_embeddings=256, rope_theta=10000.0,
                      rms_norm_eps=1e-5, tie_word_embeddings=False, attn_implementation="eager")
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(dtype).eval()


def _prefill_then_decode(model, tokens, n_prefill, dtype):
    b, t = tokens.shape
    cache = KVCache(model.args, b, 32, "cpu", dtype, fill="random")
    logits = [model.prefill(tokens[:, :n_prefill], cache, all_logits=True)]
    for i in range(n_prefill, t):
        pos = torch.full((b,), i, dtype=torch.int32)
        logits.append(model.decode(tokens[:, i], pos, cache)[:, None])
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_bf16_variant_prefill_and_decode_match_hf_llama(dtype, tol):
    hf = _hf_tiny(dtype)
    model = Transformer(ModelArgs.from_hf_config(hf.config), weights_from_hf(hf), "bf16", 64)
    tokens = torch.randint(0, 1024, (2, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(tokens).logits.float()
        out = _prefill_then_decode(model, tokens, 9, dtype).float()
    rel = float((out - ref).norm() / ref.norm())
    assert rel < tol, f"relative error {rel:.2e} vs HF Llama ({dtype})"
    # The decode positions (KV cache path) on their own, not just on average.
    rel_dec = float((out[:, 9:] - ref[:, 9:]).norm() / ref[:, 9:].norm())
    assert rel_dec < tol


def test_variants_share_everything_except_linears():
    args = ModelArgs.tiny()
    w = random_weights(args, "cpu", seed=3)
    models = build_variants(args, w, ("bf16", "fp8", "sparse_fp8"), 64)
    kinds = {"bf16": Bf16Linear, "fp8": Fp8DenseLinear, "sparse_fp8": SparseFp8Linear}
    for v, m in models.items():
        assert m.weights is w
        for i, blk in enumerate(m.layers):
            assert blk.attn_norm is w.layers[i].attn_norm and blk.ffn_norm is w.layers[i].ffn_norm
            for mods in m.linears().values():
                assert type(mods[i]) is kinds[v]
        # Outside the linears, the modules hold no parameters or buffers of their own.
        non_linear = [n for n, _ in m.named_parameters() if not any(k in n for k in ("wqkv", "wo", "w_gate_up", "w_down"))]
        assert non_linear == [] and list(m.named_buffers()) == []
    assert torch.equal(models["bf16"].rope[0], models["sparse_fp8"].rope[0])
    # bf16 linears are the shared weights themselves; fp8 is their per-channel quantization.
    w0 = w.layers[0].w_gate_up
    assert models["bf16"].layers[0].feed_forward.w_gate_up.weight.data_ptr() == w0.data_ptr()
    fp8 = models["fp8"].layers[0].feed_forward.w_gate_up
    q, s = reference.quantize_weight_per_channel_fp8(w0)
    assert torch.equal(fp8.w_fp8.view(torch.uint8), q.view(torch.uint8)) and torch.equal(fp8.s_w.reshape(-1), s.reshape(-1))
    sp = models["sparse_fp8"].layers[0].feed_forward.w_gate_up.packed
    qs, ss = reference.quantize_weight_per_channel_fp8(prune_2of4_magnitude(w0))
    values, meta = layout.compress_2of4(qs)
    assert torch.equal(sp.values.view(torch.uint8), values.view(torch.uint8)) and torch.equal(sp.meta, meta)
    assert torch.equal(sp.scale.reshape(-1), ss.reshape(-1))


def test_sparse_variant_equals_fp8_dense_variant_on_the_pruned_weights():
    """Same math (per-token fp8 x per-channel fp8, fp32 accumulate): only the weight storage differs."""
    args = ModelArgs.tiny()
    w = random_weights(args, "cpu", seed=4)
    for lw in w.layers:
        for name in ("wqkv", "wo", "w_gate_up", "w_down"):
            setattr(lw, name, prune_2of4_magnitude(getattr(lw, name)))
    models = build_variants(args, w, ("fp8", "sparse_fp8"), 64)
    tokens = torch.randint(0, args.vocab_size, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = _prefill_then_decode(models["fp8"], tokens, 5, torch.bfloat16)
        b = _prefill_then_decode(models["sparse_fp8"], tokens, 5, torch.bfloat16)
    assert torch.equal(a, b)


def test_fp8_variants_stay_close_to_bf16_logits():
    args = ModelArgs.tiny()
    w = random_weights(args, "cpu", seed=5)
    models = build_variants(args, w, ("bf16", "fp8", "sparse_fp8"), 64)
    tokens = torch.randint(0, args.vocab_size, (1, 6), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = {v: _prefill_then_decode(m, tokens, 4, torch.bfloat16).float() for v, m in models.items()}
    rel = float((out["fp8"] - out["bf16"]).norm() / out["bf16"].norm())
    assert rel < 0.1, f"fp8 dense logits differ from bf16 by {rel:.3f}"
    assert torch.isfinite(out["sparse_fp8"]).all()


def test_fused_quant_variants_compute_exactly_what_the_unfused_ones_do_on_cpu():
    """fp8_fq / sparse_fp8_fq quantize inside RMSNorm / SiLU-and-mul: same numbers, same linear modules."""
    from sparse24.loadtest.model_bench import model_checks

    errs = model_checks.check_fused_quant("cpu")
    assert errs and all(v == 0.0 for v in errs.values()), errs
    args = ModelArgs.tiny()
    models = build_variants(args, random_weights(args, "cpu"), ("sparse_fp8_fq", "sparse_fp8"), 64)
    assert models["sparse_fp8_fq"].layers is models["sparse_fp8"].layers and models["sparse_fp8_fq"].fuse_quant
    with pytest.raises(ValueError, match="needs an fp8 variant"):
        Transformer(args, random_weights(args, "cpu"), "bf16_fq", 64)


def test_prune_2of4_keeps_the_two_largest_magnitudes_per_group():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 1.0, 1.5, -0.5, 0.0]])
    p = prune_2of4_magnitude(w)
    assert torch.equal(p, torch.tensor([[0.0, -3.0, 2.0, 0.0, 1.0, 1.5, 0.0, 0.0]]))
    assert not layout.violating_groups(prune_2of4_magnitude(torch.randn(64, 128))).any()
    with pytest.raises(ValueError, match="multiple of 4"):
        prune_2of4_magnitude(torch.randn(2, 6))
    with pytest.raises(ValueError, match="unknown linear variant"):
        make_linear(torch.randn(128, 64), "int4")


def test_fused_triton_kernels_match_torch_references_in_the_interpreter():
    """The Triton kernels (bf16) under TRITON_INTERPRET=1 on CPU vs the torch references. The interpreter
    rounds casts differently from the GPU (bf16 truncation, broken fp8), so tolerances are loose here;
    tests/loadtest/model_bench/test_model_bench_gpu.py holds the tight check on the GPU."""
    pytest.importorskip("triton")
    code = ("from sparse24.loadtest.model_bench import model_checks as c; import json; "
            "print(json.dumps({**c.check_fused_ops('cpu'), **c.check_model_paths('cpu')}))")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    errs = json.loads(proc.stdout.strip().splitlines()[-1])
    errs.pop("quant_dequant")  # the interpreter's fp8 cast is wrong; the scales must still be exact
    assert errs.pop("quant_scale") == 0.0
    bad = {k: v for k, v in errs.items() if not v < 3e-2}
    assert not bad, f"Triton kernels differ from the torch references: {bad}"


def test_bench_command_runs_end_to_end_on_cpu_with_the_tiny_config(tmp_path):
    from sparse24.loadtest.model_bench import model_bench

    torch.set_num_threads(1)
    rc = model_bench.main(["--config", "tiny", "--device", "cpu", "--out", str(tmp_path),
                           "--profiles", "instruction_following,summarization", "--batches", "1,2",
                           "--breakdown-batches", "2", "--context", "16", "--decode-chunk", "2",
                           "--throughput-steps", "1", "--prefill-reps", "1"])
    assert rc == 0
    [jpath] = list(tmp_path.glob("model_tiny_cpu_*.json"))
    res = json.loads(jpath.read_text())
    assert set(res["single_stream"]) == {"instruction_following", "summarization"}
    for per in res["single_stream"].values():
        assert set(per) == {"bf16", "fp8", "sparse_fp8"}
        for d in per.values():
            assert d["prefill_ms"] > 0 and d["decode_ms_per_token"] > 0
            assert d["total_ms"] == pytest.approx(d["prefill_ms"] + (d["output_tokens"] - 1) * d["decode_ms_per_token"])
    assert set(res["throughput"]) == {"1", "2"}
    bd = res["breakdown"]["2"]["fp8"]
    assert {"qkv", "o", "gate_up", "down", "lm_head", "other", "qkv.quant", "qkv.gemm"} <= set(bd["graph_ms"])
    assert "scope_device_us" in bd["profiler"]
    assert set(res["ratios"]["targets"]) == set(model_report.TARGETS) - {"tput32_vs_bf16", "tput32_vs_fp8"}
    assert res["sparse_backend"] == ["reference"] and res["meta"]["torch"] == torch.__version__
    md = jpath.with_suffix(".md").read_text()
    assert "## (a) Single-stream latency" in md and "## (c) Decode step breakdown, batch 2" in md
    assert jpath.with_suffix(".png").stat().st_size > 10_000


def test_report_names_the_component_that_misses_a_target():
    def bd(step, lin):
        return {"step_ms": step, "graph_ms": {"qkv": lin, "o": lin, "gate_up": lin, "down": lin,
                                              "lm_head": 0.4, "other": step - 4 * lin - 0.4}}

    result = {"meta": {"gpu": "NVIDIA H100 80GB HBM3", "date_utc": "2026-11-25T14:00:00+00:00", "torch": "2.11",
                       "command": "x", "git_commit": "abc"},
              "model": {"dim": 4096}, "settings": {"context": 1024, "decode_chunk": 32},
              "weight_gib": {"bf16": 1, "fp8": 1, "sparse_fp8": 1},
              "throughput": {"32": {"bf16": {"tokens_per_s": 100.0}, "fp8": {"tokens_per_s": 150.0},
                                    "sparse_fp8": {"tokens_per_s": 170.0}}},
              "breakdown": {"32": {"bf16": bd(10.0, 2.0), "fp8": bd(6.6, 1.1), "sparse_fp8": bd(5.9, 0.9)}}}
    r = model_report.ratios(result)
    assert r["targets"]["tput32_vs_bf16"] == pytest.approx(1.7)
    lines = model_report.gap_lines(result, r)
    assert len(lines) == 1 and "batch-32 decode throughput vs fp8 dense: 1.13x < 1.25x" in lines[0]
    assert model_report.result_stem(result) == "model_llama8b_h100_2026-11-25"
