"""The exact CPU reference: quantization edge cases and the GEMM math, against fp64 recomputation."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse24.kernels import reference as ref

FP8_MAX = 448.0


def test_quantize_per_token_scale_is_row_amax_over_448():
    x = torch.tensor([[1.0, -896.0, 3.0], [0.5, 0.25, -0.125]])
    xq, s = ref.quantize_per_token_fp8(x)
    assert s.shape == (2, 1) and s.dtype == torch.float32
    assert s[0, 0] == 896.0 / FP8_MAX and s[1, 0] == pytest.approx(0.5 / FP8_MAX)
    assert xq[0, 1].float() == -FP8_MAX  # the row's amax maps exactly to -448


def test_all_zero_row_gives_zero_codes_and_minimum_scale_so_output_is_bias():
    x = torch.zeros(2, 64)
    xq, s = ref.quantize_per_token_fp8(x)
    assert torch.all(xq.float() == 0)
    assert torch.all(s == ref.FP8_MIN_AMAX / FP8_MAX)
    w = torch.randn(8, 64).to(torch.float8_e4m3fn)
    bias = torch.arange(8.0)
    y = ref.sparse_fp8_linear_reference(x, w, torch.ones(8), bias)
    assert torch.equal(y.float(), bias.expand(2, 8))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_row_with_non_finite_value_yields_nan_row_and_leaves_other_rows_intact(bad):
    x = torch.randn(3, 64)
    x[1, 5] = bad
    w = torch.randn(16, 64).to(torch.float8_e4m3fn)
    y = ref.sparse_fp8_linear_reference(x, w, torch.ones(16))
    assert torch.isnan(y[1]).all()
    assert torch.isfinite(y[[0, 2]]).all()


def test_cast_is_round_to_nearest_even_and_saturating():
    # 448 is the max; 1.0625 lies exactly between e4m3 neighbours 1.0 and 1.125 -> ties to even (1.0).
    s = 1.0
    x = torch.tensor([[448.0, 1.0625, 1.1875, -448.0]])  # amax 448 -> scale 1
    xq, scale = ref.quantize_per_token_fp8(x)
    assert scale.item() == s
    assert xq.float().tolist() == [[448.0, 1.0, 1.25, -448.0]]


def test_rejects_non_2d_or_integer_input():
    with pytest.raises(ValueError, match="2-D floating"):
        ref.quantize_per_token_fp8(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="2-D floating"):
        ref.quantize_per_token_fp8(torch.zeros(2, 4, dtype=torch.int32))


def _fp64_expected(xq, sx, w, sw, bias):
    acc = xq.double() @ w.double().t()
    y = acc * sw.double().reshape(1, -1) * sx.double().reshape(-1, 1)
    return y + (bias.double() if bias is not None else 0)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 17), n=st.sampled_from([8, 16, 48]), k=st.sampled_from([64, 128, 192]),
       with_bias=st.booleans(), out=st.sampled_from([torch.bfloat16, torch.float16]), seed=st.integers(0, 2**16),
       magnitude=st.sampled_from([1e-3, 1.0, 1e3]))
def test_gemm_equals_fp64_math_within_one_output_ulp(m, n, k, with_bias, out, seed, magnitude):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * magnitude
    w_fp8, sw = ref.quantize_weight_per_channel_fp8(torch.randn(n, k, generator=g))
    bias = torch.randn(n, generator=g) if with_bias else None
    y = ref.sparse_fp8_linear_reference(x, w_fp8, sw, bias, out)
    xq, sx = ref.quantize_per_token_fp8(x)
    expected = _fp64_expected(xq, sx, w_fp8, sw, bias)
    # fp32 accumulation over K <= 192 exact products: relative error ~K * 2^-24; output rounding 2^-8 (bf16).
    # Plus one subnormal step of the output type (fp16 results below 6.1e-5 lose relative precision).
    ulp = 2.0 ** -7 if out == torch.bfloat16 else 2.0 ** -10
    subnormal_step = torch.finfo(out).tiny * torch.finfo(out).eps
    tol = expected.abs() * ulp + 1e-6 * magnitude + subnormal_step
    assert y.dtype == out
    assert torch.all((y.double() - expected).abs() <= tol)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), k=st.sampled_from([64, 128]), seed=st.integers(0, 2**16),
       magnitude=st.floats(1e-4, 1e4))
def test_quantization_error_is_at_most_half_an_e4m3_step(rows, k, seed, magnitude):
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(seed)) * magnitude
    xq, s = ref.quantize_per_token_fp8(x)
    err = (xq.float() * s - x).abs()
    # e4m3 has 3 mantissa bits: relative half-step 2^-4 for normals; subnormal step 2^-9 (times the scale).
    bound = torch.maximum(x.abs() * 2.0 ** -4, s * 2.0 ** -10)
    assert torch.all(err <= bound * (1 + 1e-6))


def test_weight_quantization_per_channel_zero_row_stays_zero():
    w = torch.randn(4, 64)
    w[2] = 0
    wq, s = ref.quantize_weight_per_channel_fp8(w)
    assert s.shape == (4, 1) and s[2, 0] == 1.0
    assert torch.all(wq[2].float() == 0)
    assert math.isclose(wq[0].float().abs().max().item(), FP8_MAX)
