"""CI compile check: the CUDA sources compile for sm_90a with nvcc + the nvidia-cutlass wheel's headers.

Compiles the small translation units and one GEMM configuration (config 4, the small-M ping-pong kernel) without linking (~2-3 min on
2 cores). Skips without nvcc or the wheel; set SPARSE24_SKIP_COMPILE_TEST=1 to skip it deliberately.
"""
from __future__ import annotations

import os

import pytest

from sparse24.kernels import build


@pytest.mark.skipif(build.find_nvcc() is None, reason="nvcc not found")
@pytest.mark.skipif(os.environ.get("SPARSE24_SKIP_COMPILE_TEST") == "1", reason="SPARSE24_SKIP_COMPILE_TEST=1")
@pytest.mark.timeout(900)
def test_sources_compile_for_sm90a(tmp_path):
    pytest.importorskip("cutlass_library", reason="nvidia-cutlass wheel not installed")
    objdir = build.build(tmp_path, configs=[4], jobs=2, link=False, small_sources=build.CI_SOURCES)
    objs = sorted(p.name for p in objdir.glob("*.o"))
    assert any(n.startswith("gemm_pp64x16x256") for n in objs), objs
    assert any(n.startswith("quant") for n in objs) and any(n.startswith("compress") for n in objs)
    assert all((objdir / n).stat().st_size > 1000 for n in objs)
