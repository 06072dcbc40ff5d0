"""Benchmark plumbing that runs without a GPU: peers skip with a reason, shape selection, --plot re-render,
the cuSPARSELt peer's build command and (where built) its C ABI."""
import ctypes
import json
import shutil
from pathlib import Path

import pytest
import torch

from sparse24.loadtest.kernel_bench import gemm_bench, peers
from sparse24.loadtest.kernel_bench.shapes import FIG3
from sparse24.kernels.peers import build as peer_build
from sparse24.kernels.peers import cusparselt

RESULTS = gemm_bench.RESULTS
needs_cpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")


@needs_cpu
def test_vllm_peer_skips_with_a_reason_without_cuda():
    ops, why = peers.load_vllm_ops()
    assert ops is None and why == "no CUDA device"


@needs_cpu
def test_cusparselt_peer_skips_with_a_reason_without_cuda():
    assert cusparselt.unavailable_reason() == "no CUDA device visible to torch"
    col, why = peers.load_cusparselt(torch.zeros(8, 8, dtype=torch.float8_e4m3fn), torch.ones(8))
    assert col is None and why == "no CUDA device visible to torch"
    assert peers.cusparselt_version() is None


def test_vllm_ops_from_torch_ops_needs_both_registered_ops(monkeypatch):
    class Fake:
        cutlass_scaled_mm = object()

    monkeypatch.setattr(torch.ops, "_C", Fake(), raising=False)
    assert peers._ops_from_torch_ops() is None  # no dynamic_per_token_scaled_fp8_quant
    Fake.dynamic_per_token_scaled_fp8_quant = object()
    assert peers._ops_from_torch_ops() is not None


def test_shape_list_default_is_the_8b_linears_then_fig3():
    got = gemm_bench.shape_list("llama8b,fig3")
    assert [s[0] for s in got] == ["llama8b.qkv", "llama8b.o", "llama8b.gate_up", "llama8b.down", "fig3"]
    assert got[-1][1:] == FIG3 == got[2][1:]  # fig3 is the gate_up weight: copied, not re-measured
    assert gemm_bench.shape_list("llama70b.down") == [("llama70b.down", 8192, 28672)]
    with pytest.raises(ValueError, match="unknown shape"):
        gemm_bench.shape_list("llama8b.nope")


def test_bench_m_list_is_the_issue_17_sweep():
    assert gemm_bench.BENCH_MS == [1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]


def test_plot_rerenders_an_old_result_json_without_gpu(tmp_path):
    src = RESULTS / "nvidia_h100_80gb_hbm3_2026-11-25.json"
    shutil.copy(src, tmp_path / src.name)
    assert gemm_bench.main(["--plot", str(tmp_path / src.name)]) == 0
    md = (tmp_path / src.name).with_suffix(".md").read_text()
    assert "## Targets (issue 17)" in md and "| fig3 | 8192 |" in md
    data = json.loads((tmp_path / src.name).read_text())
    assert data["summary"] and "x_dense" in data["rows"][0]


@needs_cpu
def test_bench_refuses_to_run_without_the_gpu_backend(capsys):
    assert gemm_bench.main(["--quick"]) == 1
    assert "backend unavailable" in capsys.readouterr().err


def test_peer_nvcc_command_links_cusparselt_and_targets_sm90a(tmp_path):
    root = tmp_path / "cslt"
    (root / "include").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "include" / "cusparseLt.h").write_text("#define CUSPARSELT_VER_MAJOR 0\n#define CUSPARSELT_VER_MINOR 8\n"
                                                    "#define CUSPARSELT_VER_PATCH 1\n")
    (root / "lib" / "libcusparseLt.so.0").write_bytes(b"")
    assert peer_build.find_cusparselt(root) == root
    assert peer_build.header_version(root) == "0.8.1"
    cmd = peer_build.nvcc_command("nvcc", root, tmp_path / "x.so")
    assert "-gencode=arch=compute_90a,code=sm_90a" in cmd and "-l:libcusparseLt.so.0" in cmd
    assert str(peer_build.SOURCE) in cmd and "-shared" in cmd


def test_find_cusparselt_names_where_it_looked(tmp_path):
    with pytest.raises(RuntimeError, match="not found"):
        peer_build.find_cusparselt(tmp_path)


@pytest.mark.skipif(not cusparselt.library_path().exists(), reason="cuSPARSELt peer not built "
                    "(python -m sparse24.kernels.peers.build)")
def test_built_peer_library_exports_the_c_abi():
    cusparselt._preload_cusparselt()
    lib = ctypes.CDLL(str(cusparselt.library_path()))
    cusparselt._bind(lib)
    assert lib.s24p_cslt_header_version() >= 800  # compiled against cuSPARSELt >= 0.8
