"""Which implementation runs a 2:4 FP8 layer on a device: decided here, once per process, and said once.

    reference       sparse24.kernels.linear on its exact torch path (CPU development and CI)
    cutlass         our CUTLASS sm_90a sparse kernel behind the same sparse24.kernels.linear functions
    dense-fallback  decompress to dense FP8 and let the host engine run its own FP8 linear (GPUs without
                    sm_90a, a missing kernel library, or static per-tensor activation scales, which the
                    sparse op lacks)

`SPARSE24_BACKEND=reference|cutlass|dense-fallback` forces one (default `auto`; kernels/settings.py).
Users: `linear.pack_sparse_fp8_weight` and the vLLM plugin's scheme.
"""
from __future__ import annotations

import logging

import torch

from .settings import BACKEND_VAR, SparseBackend, settings

logger = logging.getLogger(__name__)
_said: set[str] = set()

__all__ = ["SparseBackend", "select_backend", "gpu_kernel_status", "use_cutlass", "say_once"]


def say_once(message: str) -> None:
    """Log a backend decision once per process (an engine builds hundreds of layers)."""
    if message not in _said:
        _said.add(message)
        logger.warning("sparse24: %s", message)


def gpu_kernel_status(device: torch.device) -> tuple[bool, str]:
    """(usable, reason): whether our sparse CUTLASS kernel can run on `device`."""
    if device.type != "cuda":
        return False, f"device is {device.type}, not CUDA"
    from . import binding  # imports no CUDA code: safe on CPU-only machines

    reason = binding.unavailable_reason(device)
    if reason is not None:
        return False, f"the sparse24 GPU kernel cannot run: {reason}"
    return True, "sm_90a with the sparse24 kernel library"


def select_backend(device: torch.device, static_input_scale: bool) -> SparseBackend:
    """The backend for a layer on `device` (inside an engine that has a dense FP8 fallback)."""
    forced = settings().backend
    if static_input_scale and forced != SparseBackend.DENSE_FALLBACK:
        say_once("static per-tensor activation scales: the sparse op quantizes per token, so these layers run "
                 "the dense FP8 fallback (decompressed, the engine's FP8 linear)")
        return SparseBackend.DENSE_FALLBACK
    if forced is not None:
        if forced == SparseBackend.CUTLASS:
            ok, reason = gpu_kernel_status(device)
            if not ok:
                raise RuntimeError(f"{BACKEND_VAR}=cutlass but the sparse kernel cannot run: {reason}")
        say_once(f"backend {forced.value} (forced by {BACKEND_VAR})")
        return forced
    if device.type != "cuda":
        say_once(f"backend reference (device {device.type}: exact torch path of sparse24.kernels.linear)")
        return SparseBackend.REFERENCE
    ok, reason = gpu_kernel_status(device)
    if ok:
        say_once(f"backend cutlass ({reason})")
        return SparseBackend.CUTLASS
    say_once(f"backend dense-fallback: {reason}; 2:4 weights are decompressed to dense FP8 for the engine's FP8 linear")
    return SparseBackend.DENSE_FALLBACK


def use_cutlass(requested: str, device: torch.device) -> bool:
    """For `linear.pack_sparse_fp8_weight(backend=requested)`: whether the weight goes to the CUTLASS path.

    "auto" takes it where it can run, "cutlass" insists (RuntimeError naming why it cannot), "reference" never.
    """
    if requested not in ("auto", "cutlass", "reference"):
        raise ValueError(f"backend must be 'auto', 'cutlass' or 'reference', got {requested!r}")
    if requested == "reference":
        return False
    ok, reason = gpu_kernel_status(device)
    if not ok and requested == "cutlass":
        raise RuntimeError(f"backend 'cutlass' requested but unavailable: {reason}")
    if not ok and device.type == "cuda":
        say_once(f"CUTLASS sparse-FP8 backend unavailable ({reason}); using the reference path")
    return ok
