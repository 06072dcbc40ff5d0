"""CPU-side tests of the GPU backend's Python layer: import without a GPU/library, dispatch table, configs."""
from __future__ import annotations

import json

import pytest
import torch

from sparse24.kernels import binding, build, settings
from sparse24.kernels.linear import pack_sparse_fp8_weight, sparse_fp8_linear
from sparse24.kernels.tuning import table as tt


def test_import_and_reason_without_gpu_or_library():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from sparse24.kernels import ops, weights  # the GPU modules import on a CPU-only machine

    assert ops.sparse_fp8_linear and weights.prepare_weight
    reason = binding.unavailable_reason()
    assert reason and "CUDA" in reason
    assert binding.unavailable_reason("cpu")


def test_cpu_weight_keeps_reference_backend():
    w = torch.zeros(8, 64)
    w[:, ::4] = 1.0
    packed = pack_sparse_fp8_weight(w.to(torch.float8_e4m3fn), torch.ones(8))
    assert packed.backend == "reference"
    y = sparse_fp8_linear(torch.ones(2, 64), packed, out_dtype=torch.float32)
    assert torch.equal(y, torch.full((2, 8), 16.0))


def test_missing_library_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSE24_LIB", str(tmp_path / "nope.so"))
    settings.reload()
    monkeypatch.setattr(binding, "_lib", None)
    monkeypatch.setattr(binding, "_load_error", None)
    try:
        assert binding.load() is None
        assert "not built" in binding.load_error() and "sparse24.kernels.build" in binding.load_error()
        with pytest.raises(binding.BackendUnavailable, match="not built"):
            binding.library()
    finally:
        monkeypatch.undo()
        settings.reload()


def test_config_list_is_consistent():
    cfgs = build.gemm_configs()
    assert len(cfgs) >= 4
    assert len({c.id for c in cfgs}) == len(cfgs) and len({c.name for c in cfgs}) == len(cfgs)
    for c in cfgs:
        # one reordered-metadata layout for all configs needs TILE_K >= 128 (see gemm_configs.def)
        assert c.tile_k >= 128 and c.tile_m in (64, 128, 256) and c.schedule in ("COOP_SK", "COOP", "PINGPONG")
        if c.schedule == "PINGPONG":
            assert c.tile_m == 64
    names = {c.name for c in cfgs}
    for m in (1, 17, 33, 100, 300, 5000):
        assert tt.default_choice(m).config in names


def test_table_lookup_buckets_and_dense(tmp_path):
    data = {"device": "x", "shapes": {"4096,4096": [
        {"m_max": 16, "backend": "sparse", "config": "sk128x16x256", "mode": "stream_k", "splits": 1},
        {"m_max": 128, "backend": "dense", "config": "sk128x64x256"},
        {"m_max": 8192, "backend": "sparse", "config": "sk128x256x128", "mode": "split_k", "splits": 2}]}}
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    t = tt.TuningTable.load(p)
    assert t.lookup(1, 4096, 4096) == tt.Choice("sparse", "sk128x16x256", "stream_k", 1)
    assert t.lookup(16, 4096, 4096).config == "sk128x16x256"
    assert t.lookup(17, 4096, 4096).backend == "dense"
    assert t.lookup(9000, 4096, 4096).splits == 2  # beyond the last bucket: the last bucket
    assert t.lookup(5, 4096, 14336) == tt.default_choice(5)  # unknown shape: the rule
    assert t.needs_dense(4096, 4096) and not t.needs_dense(4096, 14336)


def test_table_rejects_bad_entries(tmp_path):
    with pytest.raises(ValueError, match="backend"):
        tt.TuningTable({"8,64": [{"m_max": 1, "backend": "gpu"}]})
    with pytest.raises(ValueError, match="mode"):
        tt.TuningTable({"8,64": [{"m_max": 1, "mode": "fast"}]})
    p = tmp_path / "bad.json"
    p.write_text("{}")
    with pytest.raises(ValueError, match="shapes"):
        tt.TuningTable.load(p)


def test_committed_table_names_compiled_configs():
    if not tt.DEFAULT_TABLE.exists():
        pytest.skip("no tuning table committed yet")
    t = tt.TuningTable.load(tt.DEFAULT_TABLE)
    names = {c.name for c in build.gemm_configs()}
    assert t.shapes()
    for n, k in t.shapes():
        for m in (1, 64, 8192):
            assert t.lookup(m, n, k).config in names
