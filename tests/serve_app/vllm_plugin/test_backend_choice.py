"""How the plugin's backend is chosen (which checkpoints and quantization it takes: tests/kernels/test_checkpoint_format.py)."""
from __future__ import annotations

import pytest
import torch

from sparse24.serve_app.vllm_plugin import backend
from sparse24.serve_app.vllm_plugin.backend import SparseBackend, select_backend


def test_cpu_default_is_the_reference_path(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.REFERENCE


def test_env_var_forces_the_dense_fallback(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "dense-fallback")
    assert select_backend(torch.device("cpu"), static_input_scale=False) == SparseBackend.DENSE_FALLBACK


def test_static_activation_scales_use_the_dense_fallback_on_gpu(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert select_backend(torch.device("cuda"), static_input_scale=True) == SparseBackend.DENSE_FALLBACK


def test_forcing_cutlass_without_a_hopper_gpu_fails_with_the_reason(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "cutlass")
    with pytest.raises(RuntimeError, match="SPARSE24_BACKEND=cutlass but the sparse kernel cannot run: device is cpu"):
        select_backend(torch.device("cpu"), static_input_scale=False)


def test_a_misspelled_backend_is_refused_listing_the_choices(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "cutless")
    with pytest.raises(ValueError, match="'cutless' is not one of: auto, reference, cutlass, dense-fallback"):
        select_backend(torch.device("cpu"), static_input_scale=False)
