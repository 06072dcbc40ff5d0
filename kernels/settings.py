"""The kernel core's settings, read from the environment in one place, once per process.

    SPARSE24_BACKEND        auto | reference | cutlass | dense-fallback   which implementation runs 2:4 layers
    SPARSE24_LIB            path of libsparse24_fp8.so (default kernels/_build/libsparse24_fp8.so)
    SPARSE24_TUNING_TABLE   a tuning-table JSON that overrides the per-device table
    SPARSE24_PDL            0 turns off programmatic dependent launch of the GEMM after the quantizer
    SPARSE24_META           reorder | cutlass: how the CUTLASS metadata layout is produced (verification aid)

vLLM builds hundreds of layers per process; reading (and validating) the environment once keeps the choice
the same for every layer. `reload()` re-reads it (tests, or a process that changes its environment).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

DEFAULT_LIB = Path(__file__).resolve().parent / "_build" / "libsparse24_fp8.so"
BACKEND_VAR = "SPARSE24_BACKEND"


class SparseBackend(str, Enum):
    """Which implementation runs a 2:4 FP8 layer."""

    REFERENCE = "reference"  # the exact torch path of sparse24.kernels.linear (CPU development and CI)
    CUTLASS = "cutlass"  # our CUTLASS sm_90a sparse kernel behind the same linear functions
    DENSE_FALLBACK = "dense-fallback"  # decompress to dense FP8 and let the host engine run it


@dataclass(frozen=True)
class KernelSettings:
    backend: SparseBackend | None  # None: choose automatically
    library: Path
    tuning_table: str | None
    pdl: bool
    meta_source: str


def _parse_backend(raw: str) -> SparseBackend | None:
    raw = raw.strip().lower()
    if raw in ("", "auto"):
        return None
    try:
        return SparseBackend(raw)
    except ValueError:
        allowed = ", ".join(["auto"] + [b.value for b in SparseBackend])
        raise ValueError(f"{BACKEND_VAR}={raw!r} is not one of: {allowed}") from None


@lru_cache(maxsize=1)
def settings() -> KernelSettings:
    """The settings of this process (validated; a bad value raises ValueError naming the variable)."""
    env = os.environ
    meta = env.get("SPARSE24_META", "reorder").strip().lower()
    if meta not in ("reorder", "cutlass"):
        raise ValueError(f"SPARSE24_META={meta!r} is not one of: reorder, cutlass")
    return KernelSettings(
        backend=_parse_backend(env.get(BACKEND_VAR, "auto")),
        library=Path(env.get("SPARSE24_LIB") or DEFAULT_LIB),
        tuning_table=env.get("SPARSE24_TUNING_TABLE") or None,
        pdl=env.get("SPARSE24_PDL", "1") != "0",
        meta_source=meta,
    )


def reload() -> KernelSettings:
    """Forget the cached settings and read the environment again."""
    settings.cache_clear()
    return settings()
