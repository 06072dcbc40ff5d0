"""GPU tests of the CUTLASS sm90a backend against the CPU reference (kernels/reference.py, kernels/layout.py).

Run on the H100 (after `python -m sparse24.kernels.build` here, carrying kernels/_build):
    python -m pytest -q tests/kernels/test_gpu_sparse_fp8.py
Skips cleanly where there is no Hopper GPU or no built library.

Tolerances (stated once): the quantizer and the compressor are bit-exact with the reference. The GEMM sums
exact fp8 products in a different order (tensor cores, fp32 accumulators, CUTLASS FP8 fast accumulation) and
rounds once to bf16/fp16, so outputs are compared by ||y - y_ref|| / ||y_ref|| <= 1e-2 and
max |y - y_ref| <= 2e-2 * max |y_ref| (bf16 rounding alone is ~2e-3 relative per element).
"""
from __future__ import annotations

import pytest
import torch

from sparse24.kernels import layout, reference
from sparse24.kernels.linear import pack_sparse_fp8_weight, sparse_fp8_linear

from sparse24.kernels import binding, ops, weights  # noqa: E402  (import without a GPU)

_reason = binding.unavailable_reason() if torch.cuda.is_available() else "no CUDA device"
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"CUTLASS backend unavailable: {_reason}")

DEV = "cuda"
LLAMA8B = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
MS = [1, 3, 16, 127, 128, 1000, 4096]
REL_TOL, MAX_TOL = 1e-2, 2e-2


def random_24_weight(n: int, k: int, gen: torch.Generator, exact_two: bool = False) -> torch.Tensor:
    """A random 2:4 fp8 weight on the GPU; exact_two=False also plants groups with 0 and 1 non-zeros, and -0."""
    w = torch.randn(n, k, generator=gen, device=DEV) * 0.05
    keep = torch.rand(n, k // 4, 4, generator=gen, device=DEV).argsort(-1)[..., :2]
    mask = torch.zeros(n, k // 4, 4, dtype=torch.bool, device=DEV).scatter_(-1, keep, True)
    if not exact_two:
        drop = torch.rand(n, k // 4, 1, generator=gen, device=DEV) < 0.1
        mask &= ~(drop & (torch.arange(4, device=DEV) == keep[..., :1]))
        mask &= ~(torch.rand(n, k // 4, 1, generator=gen, device=DEV) < 0.02)
    w = (w * mask.view(n, k)).to(torch.float8_e4m3fn)
    if exact_two:
        # no kept value may round to zero
        wb = w.view(torch.uint8)
        wb[(wb & 0x7F == 0) & mask.view(n, k)] = 0x38  # 1.0
    else:
        wb = w.view(torch.uint8)
        wb[(wb == 0) & (torch.rand(n, k, generator=gen, device=DEV) < 0.05)] = 0x80  # -0
    return w


def assert_close_out(y: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert y.shape == ref.shape and y.dtype == ref.dtype, what
    yf, rf = y.double(), ref.double()
    assert torch.isfinite(yf).all(), f"{what}: non-finite output"
    rel = ((yf - rf).norm() / rf.norm().clamp_min(1e-30)).item()
    mx = ((yf - rf).abs().max() / rf.abs().max().clamp_min(1e-30)).item()
    assert rel <= REL_TOL and mx <= MAX_TOL, f"{what}: rel-norm err {rel:.2e}, max err {mx:.2e}"


@pytest.fixture(scope="module")
def gen():
    return torch.Generator(device=DEV).manual_seed(1234)


# --------------------------------------------------------------------------------------------- quantizer
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("m,k", [(1, 4096), (3, 64), (127, 14336), (1000, 4096), (5, 96)])
def test_quantize_bit_exact(dtype, m, k, gen):
    x = (torch.randn(m, k, generator=gen, device=DEV) * 3).to(dtype)
    if m >= 3:
        x[1] = 0  # all-zero row: scale floor
        x[2, k // 2] = float("nan")
    if m >= 5:
        x[4, 0] = float("inf")
    xq, s_x = ops.quantize_per_token(x)
    rq, rs = reference.quantize_per_token_fp8(x.cpu())
    assert xq.dtype == torch.float8_e4m3fn and s_x.shape == (m, 1) and s_x.dtype == torch.float32
    finite = torch.isfinite(rs).reshape(-1)
    assert torch.equal(torch.isfinite(s_x.cpu()).reshape(-1), finite)
    assert torch.equal(s_x.cpu()[finite], rs[finite])
    assert torch.equal(xq.cpu().view(torch.uint8)[finite], rq.view(torch.uint8)[finite])
    assert torch.isnan(xq.cpu()[~finite].float()).all()  # NaN/inf rows are all NaN


def test_quantize_row_strided_input(gen):
    base = torch.randn(8, 256, generator=gen, device=DEV, dtype=torch.bfloat16)
    x = base[:, :128]  # row stride 256
    xq, s_x = ops.quantize_per_token(x)
    rq, rs = reference.quantize_per_token_fp8(x.contiguous().cpu())
    assert torch.equal(xq.cpu().view(torch.uint8), rq.view(torch.uint8)) and torch.equal(s_x.cpu(), rs)


# --------------------------------------------------------------------------------------------- compressor
@pytest.mark.parametrize("n,k", [(64, 64), (200, 192), (4096, 4096)])
def test_gpu_compressor_bit_exact(n, k, gen):
    w = random_24_weight(n, k, gen)
    values, meta = weights.compress_2of4(w)
    rv, rm = layout.compress_2of4(w.cpu())
    assert torch.equal(values.cpu().view(torch.uint8), rv.view(torch.uint8))
    assert torch.equal(meta.cpu(), rm)


def test_gpu_compressor_rejects_non_24(gen):
    w = random_24_weight(64, 128, gen)
    w.view(torch.uint8)[5, 8:11] = 0x38  # three non-zeros in one group
    with pytest.raises(layout.Not2of4Error, match="more than 2"):
        weights.compress_2of4(w)


@pytest.mark.parametrize("n,k", [(128, 128), (192, 384), (1024, 4096)])
def test_reordered_meta_matches_cutlass_compressor(n, k, gen):
    w = random_24_weight(n, k, gen, exact_two=True)  # unique encoding: CUTLASS's corner-case rule never applies
    values, meta = weights.compress_2of4(w)
    cv, ce = weights.cutlass_compress(w)
    ours = weights.reorder_meta(meta, n, k)
    bad_v = (values.view(torch.uint8) != cv).nonzero()
    bad_e = (ours != ce).nonzero().flatten()
    assert bad_v.numel() == 0, f"{bad_v.shape[0]} value bytes differ, first at {bad_v[:4].tolist()}"
    assert bad_e.numel() == 0, (f"{bad_e.numel()}/{ce.numel()} E bytes differ, first at {bad_e[:8].tolist()}: "
                                f"ours {ours[bad_e[:8]].tolist()} cutlass {ce[bad_e[:8]].tolist()}")


# --------------------------------------------------------------------------------------------- GEMM configs
@pytest.mark.parametrize("cfg", sorted(binding.config_names()) if _reason is None else [])
@pytest.mark.parametrize("mode", ["heuristic", "data_parallel", "split_k", "stream_k"])
@pytest.mark.parametrize("m", [1, 77, 300])
def test_every_config_matches_reference(cfg, mode, m, gen):
    info = binding.config_info(cfg)
    if not info["stream_k"] and mode != "heuristic":
        pytest.skip("decomposition modes apply to stream-K configs only")
    n, k = 1024, 2048
    w = random_24_weight(n, k, gen)
    s_w = torch.rand(n, 1, generator=gen, device=DEV) * 0.01 + 1e-3
    packed = pack_sparse_fp8_weight(w, s_w)
    x = torch.randn(m, k, generator=gen, device=DEV, dtype=torch.bfloat16)
    bias = torch.randn(n, generator=gen, device=DEV, dtype=torch.bfloat16)
    xq, s_x = ops.quantize_per_token(x)
    from sparse24.kernels.tuning.table import MODES

    for out_dtype in (torch.bfloat16, torch.float16):
        y = ops.sparse_gemm(xq, s_x, packed.gpu_state.a_values, packed.gpu_state.e_meta, packed.gpu_state.s_w,
                            bias.to(out_dtype), out_dtype, binding.config_names()[cfg], MODES[mode], 3)
        ref = reference.scaled_fp8_mm_reference(xq, s_x, w, s_w, bias, out_dtype)
        assert_close_out(y, ref, f"{cfg}/{mode} M={m} {out_dtype}")


# --------------------------------------------------------------------------------------------- the linear
@pytest.fixture(scope="module")
def llama_weights(gen):
    out = {}
    for name, (n, k) in LLAMA8B.items():
        w = random_24_weight(n, k, gen)
        s_w = torch.rand(n, 1, generator=gen, device=DEV) * 0.02 + 1e-3
        out[name] = (w, s_w, pack_sparse_fp8_weight(w, s_w))
    return out


@pytest.mark.parametrize("shape", list(LLAMA8B))
@pytest.mark.parametrize("m", MS)
def test_linear_llama8b_shapes(shape, m, llama_weights, gen):
    w, s_w, packed = llama_weights[shape]
    assert packed.backend == "cutlass"
    n, k = w.shape
    x = torch.randn(m, k, generator=gen, device=DEV, dtype=torch.bfloat16)
    bias = torch.randn(n, generator=gen, device=DEV, dtype=torch.bfloat16)
    for out_dtype in (torch.bfloat16, torch.float16):
        for b in (None, bias):
            y = sparse_fp8_linear(x, packed, b, out_dtype)
            ref = reference.sparse_fp8_linear_reference(x, w, s_w, b, out_dtype)
            assert_close_out(y, ref, f"{shape} M={m} bias={b is not None} {out_dtype}")


@pytest.mark.parametrize("n,k", [(200, 192), (72, 320), (1032, 4160)])
def test_linear_odd_shapes(n, k, gen):
    """N not a multiple of 64 (padded metadata rows), K not a multiple of 128 (padded metadata K block)."""
    w = random_24_weight(n, k, gen)
    s_w = torch.rand(n, 1, generator=gen, device=DEV) * 0.01 + 1e-3
    packed = pack_sparse_fp8_weight(w, s_w)
    for m in (1, 5, 300):
        x = torch.randn(m, k, generator=gen, device=DEV, dtype=torch.bfloat16)
        bias = torch.randn(n, generator=gen, device=DEV, dtype=torch.bfloat16)
        y = sparse_fp8_linear(x, packed, bias)
        assert_close_out(y, reference.sparse_fp8_linear_reference(x, w, s_w, bias), f"N={n} K={k} M={m}")


def test_linear_nan_row_and_leading_dims(llama_weights, gen):
    w, s_w, packed = llama_weights["o"]
    x = torch.randn(2, 3, 4096, generator=gen, device=DEV, dtype=torch.float16)
    x[1, 2, 7] = float("nan")
    y = sparse_fp8_linear(x, packed)
    assert y.shape == (2, 3, 4096) and y.dtype == torch.float16
    assert torch.isnan(y[1, 2]).all() and torch.isfinite(y[0]).all()
    ref = reference.sparse_fp8_linear_reference(x[0], w, s_w, None, torch.float16)
    assert_close_out(y[0], ref, "leading dims")


def test_matches_cpu_reference_path(gen):
    """GPU result vs the CPU path of the same op (pack on CPU, run on CPU)."""
    w = random_24_weight(512, 1024, gen)
    s_w = torch.rand(512, 1, generator=gen, device=DEV) * 0.01 + 1e-3
    x = torch.randn(33, 1024, generator=gen, device=DEV, dtype=torch.bfloat16)
    y = sparse_fp8_linear(x, pack_sparse_fp8_weight(w, s_w))
    y_cpu = sparse_fp8_linear(x.cpu(), pack_sparse_fp8_weight(w.cpu(), s_w.cpu()))
    assert_close_out(y.cpu(), y_cpu, "gpu vs cpu path")


# --------------------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise(llama_weights, gen):
    w, s_w, packed = llama_weights["o"]
    x = torch.randn(4, 4096, device=DEV, dtype=torch.bfloat16)
    bad = w.clone()
    bad.view(torch.uint8)[0, :4] = 0x38
    with pytest.raises(layout.Not2of4Error):
        pack_sparse_fp8_weight(bad, s_w)
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        pack_sparse_fp8_weight(w.to(torch.bfloat16), s_w)
    with pytest.raises(ValueError, match="multiple of 64"):
        pack_sparse_fp8_weight(w[:, :4064].contiguous(), s_w)
    with pytest.raises(TypeError, match="bfloat16, float16 or float32"):
        sparse_fp8_linear(x.to(torch.float64), packed)
    with pytest.raises(TypeError, match="out_dtype"):
        sparse_fp8_linear(x, packed, out_dtype=torch.float32)
    with pytest.raises(ValueError, match="unit stride"):
        sparse_fp8_linear(torch.randn(4096, 4, device=DEV, dtype=torch.bfloat16).t(), packed)
    with pytest.raises(ValueError, match="device mismatch"):
        sparse_fp8_linear(x.cpu(), packed)
    with pytest.raises(ValueError, match="K=4000"):
        sparse_fp8_linear(x[:, :4000], packed)
    with pytest.raises(ValueError, match="bias"):
        sparse_fp8_linear(x, packed, torch.zeros(7, device=DEV, dtype=torch.bfloat16))
    with pytest.raises(RuntimeError, match="config 31"):
        xq, s_x = ops.quantize_per_token(x)
        ops.sparse_gemm(xq, s_x, packed.gpu_state.a_values, packed.gpu_state.e_meta, packed.gpu_state.s_w, None,
                        torch.bfloat16, 31, 0, 1)
    # the process and the context survive: a normal call still works
    assert torch.isfinite(sparse_fp8_linear(x, packed)).all()


# --------------------------------------------------------------------------------------------- streams, graphs, compile
def test_current_stream_and_cuda_graph(llama_weights, gen):
    w, s_w, packed = llama_weights["qkv"]
    x = torch.randn(8, 4096, generator=gen, device=DEV, dtype=torch.bfloat16)
    eager = sparse_fp8_linear(x, packed)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        on_side = sparse_fp8_linear(x, packed)
    torch.cuda.current_stream().wait_stream(s)
    assert torch.equal(on_side, eager)
    g = torch.cuda.CUDAGraph()
    static_x = x.clone()
    with torch.cuda.graph(g):
        static_y = sparse_fp8_linear(static_x, packed)
    static_x.copy_(torch.randn(8, 4096, generator=gen, device=DEV, dtype=torch.bfloat16))
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_y, sparse_fp8_linear(static_x, packed))


def test_opcheck_and_compile(llama_weights, gen):
    w, s_w, packed = llama_weights["o"]
    x = torch.randn(16, 4096, generator=gen, device=DEV, dtype=torch.bfloat16)
    st = packed.gpu_state
    # fake-tensor check only: opcheck's schema/autograd checks do arithmetic that fp8 tensors lack
    torch.library.opcheck(ops.quantize_per_token, (x,), test_utils=("test_faketensor",))
    torch.library.opcheck(ops.sparse_fp8_linear_op, (x, st.a_values, st.e_meta, st.s_w, None, None,
                                                     torch.bfloat16), test_utils=("test_faketensor",))
    f = torch.compile(lambda t: sparse_fp8_linear(t, packed) * 2, fullgraph=True, backend="aot_eager")
    assert torch.equal(f(x), sparse_fp8_linear(x, packed) * 2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_second_device(gen):
    w = random_24_weight(256, 512, gen).to("cuda:1")
    s_w = torch.full((256, 1), 0.01, device="cuda:1")
    packed = pack_sparse_fp8_weight(w, s_w)
    x = torch.randn(5, 512, device="cuda:1", dtype=torch.bfloat16)
    y = sparse_fp8_linear(x, packed)
    assert y.device == x.device
    assert_close_out(y, reference.sparse_fp8_linear_reference(x, w, s_w), "cuda:1")
