"""Which kernel runs a sparse-FP8 linear of shape (M, N, K): the dispatcher's tuning table.

The table (JSON, written on the device by `python -m sparse24.loadtest.kernel_bench.tune`) maps a weight shape
"N,K" to a list of M buckets; each bucket names the fastest choice measured for M up to `m_max`:

    {"device": "NVIDIA H100 80GB HBM3", "date": "...", "shapes": {
        "28672,4096": [{"m_max": 16, "backend": "sparse", "config": "sk128x16x256", "mode": "stream_k",
                        "splits": 1, "us": 31.2, "dense_us": 61.0}, ...]}}

Tables are per device: kernels/tuning/<key>_sm90.json with key from kernels/devices.py ("h100", "h200"), picked
by the current device's name; a device without its own table uses h100_sm90.json (the first one measured)
and says so once in the log. $SPARSE24_TUNING_TABLE (kernels/settings.py) overrides the choice.

backend "sparse" runs our CUTLASS kernel with that config/decomposition; "dense" runs cuBLASLt fp8
(`torch._scaled_mm`, row-wise scales) on a dense copy of the weight, for buckets where that was faster.
Shapes or M beyond the table fall back to `default_choice`, a rule of thumb by M.
"""
from __future__ import annotations

import bisect
import json
import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from .. import devices

logger = logging.getLogger(__name__)

TUNING_DIR = Path(__file__).resolve().parent
DEFAULT_TABLE = TUNING_DIR / "h100_sm90.json"  # the fallback: measured on the H100 SXM (2026-11-25)
MODES = {"heuristic": 0, "data_parallel": 1, "split_k": 2, "stream_k": 3}


@dataclass(frozen=True)
class Choice:
    """One dispatch decision. `config` is a name from csrc/gemm_configs.def."""

    backend: str = "sparse"  # "sparse" | "dense"
    config: str = "pp64x128x256"
    mode: str = "heuristic"  # key of MODES (stream-K configs only)
    splits: int = 1

    def __post_init__(self):
        if self.backend not in ("sparse", "dense"):
            raise ValueError(f"backend must be 'sparse' or 'dense', got {self.backend!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {self.mode!r}")
        if self.splits < 1:
            raise ValueError(f"splits must be >= 1, got {self.splits}")


def default_choice(m: int) -> Choice:
    """Untuned rule (from the first H100 tuning run): ping-pong with a token tile near M for small and mid
    M, a 2-CTA-cluster cooperative 128x256 tile for large M."""
    if m <= 64:
        return Choice(config="pp64x16x256")
    if m <= 384:
        return Choice(config="pp64x128x256")
    return Choice(config="co128x256x128c2")


class TuningTable:
    """Lookup of `Choice` by (M, N, K); buckets are sorted by m_max."""

    def __init__(self, shapes: dict[str, list[dict]] | None = None, meta: dict | None = None):
        self.meta = meta or {}
        self._shapes: dict[tuple[int, int], tuple[list[int], list[Choice]]] = {}
        for key, buckets in (shapes or {}).items():
            n, k = (int(v) for v in key.split(","))
            rows = sorted(buckets, key=lambda b: int(b["m_max"]))
            self._shapes[(n, k)] = (
                [int(b["m_max"]) for b in rows],
                [Choice(b.get("backend", "sparse"), b.get("config", "pp64x128x256"), b.get("mode", "heuristic"),
                        int(b.get("splits", 1))) for b in rows],
            )

    @classmethod
    def load(cls, path: Path | str) -> "TuningTable":
        data = json.loads(Path(path).read_text())
        if not isinstance(data.get("shapes"), dict):
            raise ValueError(f"{path}: tuning table needs a 'shapes' object")
        return cls(data["shapes"], {k: v for k, v in data.items() if k != "shapes"})

    def lookup(self, m: int, n: int, k: int) -> Choice:
        entry = self._shapes.get((n, k))
        if entry is None:
            return default_choice(m)
        bounds, choices = entry
        i = bisect.bisect_left(bounds, m)
        return choices[min(i, len(choices) - 1)]

    def needs_dense(self, n: int, k: int) -> bool:
        """True if some M bucket of this weight shape dispatches to the dense cuBLASLt path."""
        entry = self._shapes.get((n, k))
        return bool(entry) and any(c.backend == "dense" for c in entry[1])

    def shapes(self) -> list[tuple[int, int]]:
        return sorted(self._shapes)


def table_name(device_name: str | None, capability: tuple[int, int] | None = None) -> str | None:
    """File name of the tuning table for a device ("NVIDIA H200" -> "h200_sm90.json"); None if unknown."""
    peaks = devices.lookup(device_name, capability)
    return f"{peaks.key}_sm90.json" if peaks else None


def table_for_device(device_name: str | None, capability: tuple[int, int] | None = None,
                     tuning_dir: Path | None = None) -> Path:
    """The device's own table if there is one, else DEFAULT_TABLE (logged, except without any device)."""
    tuning_dir = TUNING_DIR if tuning_dir is None else tuning_dir
    name = table_name(device_name, capability)
    if name and (tuning_dir / name).exists():
        return tuning_dir / name
    if device_name is not None:
        logger.warning("sparse24: no tuning table for %s (%s); using %s, measured on another device", device_name,
                       name or "unknown device", DEFAULT_TABLE.name)
    return DEFAULT_TABLE


@lru_cache(maxsize=8)
def load_table(path: str | None = None) -> TuningTable:
    """The table at `path`, or (path None) the current device's table (`table_for_device`); an empty table if
    the file does not exist."""
    p = Path(path) if path else table_for_device(*devices.current_name_and_capability())
    if not p.exists():
        logger.info("sparse24: no tuning table at %s; using the default M rule", p)
        return TuningTable()
    return TuningTable.load(p)


def choice_dict(c: Choice) -> dict:
    return asdict(c)
