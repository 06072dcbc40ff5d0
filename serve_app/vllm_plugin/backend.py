"""Which implementation runs a 2:4 FP8 layer, chosen once per process and said once.

    reference       sparse24.kernels.linear on its exact torch path (CPU development and CI)
    cutlass         our CUTLASS sm_90a sparse kernel behind the same sparse24.kernels.linear functions
    dense-fallback  decompress to dense FP8 and run vLLM's own FP8 linear (GPUs without sm_90a, a missing
                    kernel library, or static per-tensor activation scales, which the sparse op lacks)

`SPARSE24_BACKEND=reference|cutlass|dense-fallback` forces one (default `auto`).
"""
from __future__ import annotations

import logging
import os
from enum import Enum

import torch

logger = logging.getLogger(__name__)

ENV_VAR = "SPARSE24_BACKEND"
_said: set[str] = set()


class SparseBackend(str, Enum):
    REFERENCE = "reference"
    CUTLASS = "cutlass"
    DENSE_FALLBACK = "dense-fallback"


def say_once(message: str) -> None:
    """Log a backend decision once per process (vLLM builds hundreds of layers)."""
    if message not in _said:
        _said.add(message)
        logger.warning("sparse24: %s", message)


def requested_backend() -> SparseBackend | None:
    """The backend forced by SPARSE24_BACKEND, or None for automatic choice."""
    raw = os.environ.get(ENV_VAR, "auto").strip().lower()
    if raw in ("", "auto"):
        return None
    try:
        return SparseBackend(raw)
    except ValueError:
        allowed = ", ".join(["auto"] + [b.value for b in SparseBackend])
        raise ValueError(f"{ENV_VAR}={raw!r} is not one of: {allowed}") from None


def gpu_kernel_status(device: torch.device) -> tuple[bool, str]:
    """(usable, reason): whether our sparse CUTLASS kernel can run on this CUDA device."""
    if device.type != "cuda":
        return False, f"device is {device.type}, not CUDA"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) != (9, 0):
        return False, f"GPU capability sm_{major}{minor} is not sm_90a (Hopper), which the sparse kernel needs"
    try:
        from sparse24.kernels import ops
    except ImportError as e:
        return False, f"the sparse24 GPU kernel library is not built ({e})"
    if not ops.gpu_backend_available(device):
        return False, f"the sparse24 GPU kernel library is unavailable: {ops.unavailable_reason()}"
    return True, "sm_90a with the sparse24 kernel library"


def select_backend(device: torch.device, static_input_scale: bool) -> SparseBackend:
    """Pick the backend for a layer on `device`; logs the decision once per process."""
    forced = requested_backend()
    if static_input_scale and forced != SparseBackend.DENSE_FALLBACK:
        say_once("static per-tensor activation scales: the sparse op quantizes per token, so these layers run "
                 "the dense FP8 fallback (decompressed, vLLM's FP8 linear)")
        return SparseBackend.DENSE_FALLBACK
    if forced is not None:
        if forced == SparseBackend.CUTLASS:
            ok, reason = gpu_kernel_status(device)
            if not ok:
                raise RuntimeError(f"{ENV_VAR}=cutlass but the sparse kernel cannot run: {reason}")
        say_once(f"backend {forced.value} (forced by {ENV_VAR})")
        return forced
    if device.type != "cuda":
        say_once(f"backend reference (device {device.type}: exact torch path of sparse24.kernels.linear)")
        return SparseBackend.REFERENCE
    ok, reason = gpu_kernel_status(device)
    if ok:
        say_once(f"backend cutlass ({reason})")
        return SparseBackend.CUTLASS
    say_once(f"backend dense-fallback: {reason}; 2:4 weights are decompressed to dense FP8 for vLLM's FP8 linear")
    return SparseBackend.DENSE_FALLBACK
