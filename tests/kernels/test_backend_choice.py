"""How the backend of a 2:4 layer is chosen (kernels/backend.py; which checkpoints and quantization the plugin takes:
tests/kernels/test_checkpoint_format.py)."""
from __future__ import annotations

import pytest
import torch

from sparse24.kernels import settings
from sparse24.kernels.backend import SparseBackend, select_backend, use_cutlass


@pytest.fixture(autouse=True)
def _fresh_settings():
    """The settings are read once per process: re-read them after each test's environment change."""
    yield
    settings.reload()


def _set(monkeypatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(settings.BACKEND_VAR, raising=False)
    else:
        monkeypatch.setenv(settings.BACKEND_VAR, value)
    settings.reload()


def test_cpu_default_is_the_reference_path(monkeypatch):
    _set(monkeypatch, None)
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.REFERENCE


def test_env_var_forces_the_dense_fallback(monkeypatch):
    _set(monkeypatch, "dense-fallback")
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.DENSE_FALLBACK


def test_static_activation_scales_use_the_dense_fallback_on_gpu(monkeypatch):
    _set(monkeypatch, None)
    assert select_backend(torch.device("cuda"), static_input_scale=True) == SparseBackend.DENSE_FALLBACK


def test_forcing_cutlass_without_a_hopper_gpu_fails_with_the_reason(monkeypatch):
    _set(monkeypatch, "cutlass")
    with pytest.raises(RuntimeError, match="SPARSE24_BACKEND=cutlass but the sparse kernel cannot run: device is cpu"):
        select_backend(torch.device("cpu"), static_input_scale=False)


def test_a_misspelled_backend_is_refused_listing_the_choices(monkeypatch):
    monkeypatch.setenv(settings.BACKEND_VAR, "cutless")
    settings.settings.cache_clear()
    with pytest.raises(ValueError, match="'cutless' is not one of: auto, reference, cutlass, dense-fallback"):
        select_backend(torch.device("cpu"), static_input_scale=False)
    monkeypatch.delenv(settings.BACKEND_VAR)


def test_settings_are_read_once_per_process(monkeypatch):
    _set(monkeypatch, "dense-fallback")
    monkeypatch.setenv(settings.BACKEND_VAR, "reference")  # not re-read until reload()
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.DENSE_FALLBACK
    settings.reload()
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.REFERENCE


def test_weight_packing_backend_request():
    cpu = torch.device("cpu")
    assert use_cutlass("auto", cpu) is False and use_cutlass("reference", cpu) is False
    with pytest.raises(RuntimeError, match="backend 'cutlass' requested but unavailable: device is cpu"):
        use_cutlass("cutlass", cpu)
    with pytest.raises(ValueError, match="'gpu'"):
        use_cutlass("gpu", cpu)
