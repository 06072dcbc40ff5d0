"""The GEMM benchmark's report logic (loadtest/kernel_bench/report.py) on made-up timings: no GPU."""
import pytest

from sparse24.loadtest.kernel_bench import report as rp

H200 = {"label": "H200", "hbm_tbs": 4.8, "fp8_dense_tflops": 1979.0}


def row(m, sparse=10.0, fp8=20.0, fast=19.0, vllm=15.0, cslt=12.0, cslt_gemm=11.0, lin=14.0, vlin=22.0,
        shape="llama8b.o", n=4096, k=4096, **kw):
    r = {"shape": shape, "n": n, "k": k, "m": m, "bf16_us": 40.0, "fp8_us": fp8, "fp8_fast_accum_us": fast,
         "vllm_cutlass_us": vllm, "sparse_us": sparse, "dispatched_us": sparse, "dispatch": "sparse:x",
         "cslt_cached_us": cslt, "cslt_gemm_us": cslt_gemm, "sparse_linear_us": lin, "vllm_linear_us": vlin,
         "fp8_linear_us": 25.0}
    r.update(kw)
    return r


def test_fastest_dense_is_the_minimum_over_the_measured_baselines():
    assert rp.fastest_dense(row(16)) == ("vLLM-CUTLASS", 15.0)
    assert rp.fastest_dense(row(16, vllm=None)) == ("cuBLASLt-fast", 19.0)
    assert rp.fastest_dense(row(16, vllm=30.0, fast=None)) == ("cuBLASLt", 20.0)
    assert rp.fastest_dense(row(16, fp8=None, fast=None, vllm=None)) == (None, None)


def test_derive_ratios_against_fastest_dense_vllm_whole_op_and_cusparselt():
    d = rp.derive(row(16), H200)
    assert d["x_dense"] == 1.5 and d["x_dense_kernel"] == 1.5
    assert d["x_cublaslt"] == 1.9 and d["x_vllm_cutlass"] == 1.5
    assert d["x_vllm_linear"] == pytest.approx(22 / 14, abs=1e-3)
    assert d["x_cslt"] == 1.2 and d["x_cslt_gemm"] == 1.1
    assert d["x_bf16"] == 4.0


def test_derive_uses_the_dispatched_time_for_the_user_facing_ratio():
    d = rp.derive(row(4096, sparse=30.0, dispatched_us=20.0, fp8=22.0, fast=21.0, vllm=None))
    assert d["x_dense"] == 1.05  # 21 / 20: the dispatcher ran cuBLASLt-like speed
    assert d["x_dense_kernel"] == 0.7  # the sparse kernel alone loses


def test_derive_bandwidth_uses_the_device_peaks():
    n = k = 4096
    d = rp.derive(row(1, sparse=10.0, n=n, k=k), H200)
    expect = rp.sparse_bytes(n, k, 1) / 10e-6 / 1e12
    assert d["sparse_tbs"] == pytest.approx(expect, abs=1e-3)
    assert d["sparse_hbm_util"] == pytest.approx(expect / 4.8, abs=1e-3)
    assert rp.derive(row(1, sparse=10.0))["sparse_hbm_util"] == pytest.approx(expect / 3.35, abs=1e-3)  # default


def test_missing_peers_give_none_not_errors():
    d = rp.derive(row(16, vllm=None, cslt=None, cslt_gemm=None, vlin=None))
    assert d["x_vllm_cutlass"] is None and d["x_cslt"] is None and d["x_vllm_linear"] is None
    assert d["fastest_dense"] == "cuBLASLt-fast"


@pytest.mark.parametrize("m,sparse,expect", [
    (1, 15 / 1.45, "pass"), (64, 15 / 1.44, "miss"),  # 1.45x at M <= 64
    (128, 15 / 1.25, "pass"), (1024, 15 / 1.24, "miss"),  # 1.25x at 128..1024
    (2048, 15 / 1.5, "pass"), (8192, 15 / 1.49, "miss"),  # 1.5x at M >= 2048
])
def test_dense_tier_targets_by_m(m, sparse, expect):
    r = dict(row(m, sparse=sparse))
    r.update(rp.derive(r))
    tier = [t.name for t in rp.TARGETS if t.metric == "x_dense" and t.minimum > 1.0 and t.applies(m)]
    assert len(tier) == 1
    assert rp.check(r)[tier[0]] == expect


def test_m_between_tiers_has_only_the_never_below_one_target():
    r = row(96)
    r.update(rp.derive(r))
    got = rp.check(r)
    assert "dense never<1" in got and not any(n.startswith("dense M") or n == "dense 128-1024" for n in got)


def test_never_below_one_and_whole_op_and_cusparselt_targets():
    r = row(32, sparse=16.0, cslt=15.0, lin=20.0, vlin=27.0)  # 0.94x dense, 0.94x cuSPARSELt, 1.35x whole op
    r.update(rp.derive(r))
    st = rp.check(r)
    assert st["dense never<1"] == "miss" and st["vs cuSPARSELt"] == "miss"
    assert st["whole-op vs vLLM M<=64"] == "miss"
    r = row(32, lin=10.0, vlin=14.0)
    r.update(rp.derive(r))
    assert rp.check(r)["whole-op vs vLLM M<=64"] == "pass"
    r = row(128)
    r.update(rp.derive(r))
    assert "whole-op vs vLLM M<=64" not in rp.check(r)  # no whole-op target above M = 64


def test_skipped_peer_marks_its_target_skip():
    r = row(16, cslt=None, vlin=None)
    r.update(rp.derive(r))
    st = rp.check(r)
    assert st["vs cuSPARSELt"] == "skip" and st["whole-op vs vLLM M<=64"] == "skip"


def test_summary_counts_and_worst_location():
    rows = rp.enrich([row(1, sparse=10.0), row(16, sparse=12.0, shape="llama8b.qkv"), row(128, sparse=20.0)])
    s = {x["target"]: x for x in rp.summary(rows)}
    assert (s["dense M<=64"]["pass"], s["dense M<=64"]["miss"]) == (1, 1)  # 1.5 pass, 1.25 miss
    assert s["dense M<=64"]["worst_at"] == "llama8b.qkv M=16"
    assert s["dense never<1"]["miss"] == 1 and s["dense never<1"]["worst"] == 0.75
    assert s["dense M>=2048"]["pass"] == s["dense M>=2048"]["miss"] == 0


def test_markdown_has_every_row_status_marks_peaks_and_skip_reasons():
    result = {"environment": {"gpu": "NVIDIA H200", "date": "2026-12-05", "peaks": H200, "commit": "abc1234",
                              "vllm": "0.26.0", "cusparselt": "0.8.1", "skipped": {"vLLM": "not importable"}},
              "rows": [row(1), row(64, sparse=14.0), row(4096, sparse=9.0, vllm=None)]}
    md = rp.markdown(result)
    table = [ln for ln in md.splitlines() if ln.startswith("| llama8b.o |")]
    assert len(table) == 3
    assert "1.50 ✓ (vLLM-CUTLASS)" in table[0] and "✗" in table[1]
    assert "%HBM of 4.8 TB/s (H200)" in md and "abc1234" in md
    assert "- vLLM: not importable" in md
    assert "## Targets (issue 17)" in md
    assert all(len(ln.split("|")) == len(rp.TABLE_HEADER) + 2 for ln in table)


def test_markdown_renders_an_old_result_without_peers_or_peaks():
    old = {"environment": {"gpu": "NVIDIA H100 80GB HBM3", "date": "2026-11-25"},
           "rows": [{"shape": "fig3", "n": 28672, "k": 4096, "m": 16, "bf16_us": 96.0, "fp8_us": 61.0,
                     "fp8_fast_accum_us": 60.8, "sparse_us": 40.0, "dispatched_us": 40.0,
                     "sparse_linear_us": 45.0, "fp8_linear_us": 67.0, "cusparselt_us": 500.0}]}
    md = rp.markdown(old)
    assert "| fig3 | 16 |" in md and "3.35 TB/s" in md
