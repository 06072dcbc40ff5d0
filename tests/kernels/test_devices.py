"""Device peaks and per-device tuning-table choice, by device-name string (no GPU needed)."""
import json
import logging

import pytest

from sparse24.kernels import devices
from sparse24.kernels.tuning import table as tt


@pytest.mark.parametrize("name,key,tbs,dense", [
    ("NVIDIA H100 80GB HBM3", "h100", 3.35, 1979.0),
    ("NVIDIA H200", "h200", 4.8, 1979.0),
    ("NVIDIA H200 NVL", "h200", 4.8, 1670.5),
    ("NVIDIA H100 NVL", "h100", 3.9, 1670.5),
    ("NVIDIA H100 PCIe", "h100", 2.0, 1513.0),
])
def test_lookup_matches_torch_device_names_to_datasheet_peaks(name, key, tbs, dense):
    p = devices.lookup(name, (9, 0))
    assert (p.key, p.hbm_tbs, p.fp8_dense_tflops) == (key, tbs, dense)
    assert p.fp8_sparse_tflops == 2 * dense


def test_lookup_unknown_or_wrong_capability_is_none():
    assert devices.lookup("NVIDIA A100-SXM4-80GB", (8, 0)) is None
    assert devices.lookup("NVIDIA H100 80GB HBM3", (8, 9)) is None
    assert devices.lookup(None) is None
    assert devices.lookup("nvidia h200") is not None  # case-insensitive, capability optional


def test_lookup_or_default_falls_back_to_h100_sxm_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        p, known = devices.lookup_or_default("NVIDIA L40S", (8, 9))
    assert not known and p.hbm_tbs == 3.35
    assert "no datasheet peaks" in caplog.text


def test_table_name_per_device_family():
    assert tt.table_name("NVIDIA H200", (9, 0)) == "h200_sm90.json"
    assert tt.table_name("NVIDIA H100 80GB HBM3", (9, 0)) == "h100_sm90.json"
    assert tt.table_name("NVIDIA A100-SXM4-80GB", (8, 0)) is None


def test_table_for_device_picks_its_own_table_when_present(tmp_path):
    (tmp_path / "h200_sm90.json").write_text(json.dumps({"shapes": {}}))
    assert tt.table_for_device("NVIDIA H200", (9, 0), tuning_dir=tmp_path) == tmp_path / "h200_sm90.json"


def test_table_for_device_falls_back_to_h100_table_with_a_log_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        p = tt.table_for_device("NVIDIA H200", (9, 0), tuning_dir=tmp_path)
    assert p == tt.DEFAULT_TABLE
    assert "no tuning table for NVIDIA H200 (h200_sm90.json)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert tt.table_for_device(None, None, tuning_dir=tmp_path) == tt.DEFAULT_TABLE
    assert caplog.text == ""  # no device (CPU): the default silently


def test_load_table_without_path_uses_the_current_devices_table(monkeypatch, tmp_path):
    table = {"device": "NVIDIA H200", "shapes": {"64,64": [{"m_max": 8, "config": "pp64x16x512"}]}}
    (tmp_path / "h200_sm90.json").write_text(json.dumps(table))
    monkeypatch.setattr(tt, "TUNING_DIR", tmp_path)
    monkeypatch.setattr(devices, "current_name_and_capability", lambda: ("NVIDIA H200", (9, 0)))
    tt.load_table.cache_clear()
    try:
        t = tt.load_table()
        assert t.meta["device"] == "NVIDIA H200"
        assert t.lookup(4, 64, 64).config == "pp64x16x512"
    finally:
        tt.load_table.cache_clear()


def test_shipped_h100_table_is_the_fallback_and_parses():
    assert tt.DEFAULT_TABLE.name == "h100_sm90.json" and tt.DEFAULT_TABLE.exists()
    assert tt.TuningTable.load(tt.DEFAULT_TABLE).shapes()
