"""Per-device datasheet peaks and the device key that names tuning tables, looked up by device name.

`lookup(name, capability)` matches `torch.cuda.get_device_name()` strings ("NVIDIA H100 80GB HBM3",
"NVIDIA H200", "NVIDIA H100 NVL", ...); `current()` does it for the current CUDA device (None on CPU).
The benchmark divides achieved bytes/s and FLOP/s by these peaks; kernels/tuning picks `<key>_sm90.json`.

Peaks are NVIDIA's datasheet numbers (dense FP8 = half the "with sparsity" figure the datasheets print):
- H100 SXM5 80GB: HBM3 3.35 TB/s; FP8 Tensor Core 3,958 TFLOPS with sparsity (1,979 dense).
  H100 PCIe: HBM2e 2.0 TB/s; FP8 3,026 sparse. H100 NVL: HBM3 3.9 TB/s; FP8 3,341 sparse.
  (NVIDIA H100 Tensor Core GPU datasheet, nvidia.com/en-us/data-center/h100/)
- H200 SXM 141GB: HBM3e 4.8 TB/s; FP8 Tensor Core 3,958 TFLOPS with sparsity (1,979 dense: same GH100 chip
  and clocks as H100 SXM, only the memory differs). H200 NVL: 4.8 TB/s; FP8 3,341 sparse.
  (NVIDIA H200 Tensor Core GPU datasheet / product page, nvidia.com/en-us/data-center/h200/)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePeaks:
    """Datasheet peaks of one GPU model. key names its tuning table family ("h100" -> h100_sm90.json)."""

    key: str
    label: str
    hbm_tbs: float  # TB/s (10^12 bytes/s)
    fp8_dense_tflops: float  # 10^12 FLOP/s, dense FP8 tensor core (sparse = 2x)

    @property
    def fp8_sparse_tflops(self) -> float:
        return 2 * self.fp8_dense_tflops


# Most specific first: "H100 NVL" and "H100 PCIe" must match before plain "H100".
_TABLE: list[tuple[tuple[str, ...], DevicePeaks]] = [
    (("H200 NVL",), DevicePeaks("h200", "H200 NVL", 4.8, 3341 / 2)),
    (("H200",), DevicePeaks("h200", "H200 SXM 141GB HBM3e", 4.8, 3958 / 2)),
    (("H100 NVL",), DevicePeaks("h100", "H100 NVL", 3.9, 3341 / 2)),
    (("H100 PCIe",), DevicePeaks("h100", "H100 PCIe", 2.0, 3026 / 2)),
    (("H100",), DevicePeaks("h100", "H100 SXM5 80GB HBM3", 3.35, 3958 / 2)),
]
DEFAULT = _TABLE[-1][1]  # what the benchmark assumed before this table (H100 SXM)


def lookup(name: str | None, capability: tuple[int, int] | None = None) -> DevicePeaks | None:
    """Peaks for a device name as torch reports it (case-insensitive substring match); None if unknown.
    A known name with a capability other than (9, 0) is not that chip (e.g. a renamed device): None."""
    if not name:
        return None
    low = name.lower()
    for patterns, peaks in _TABLE:
        if any(p.lower() in low for p in patterns):
            if capability is not None and tuple(capability) != (9, 0):
                return None
            return peaks
    return None


def lookup_or_default(name: str | None, capability: tuple[int, int] | None = None) -> tuple[DevicePeaks, bool]:
    """(peaks, known): the device's peaks, or the H100 SXM's with known=False (logged once per name)."""
    peaks = lookup(name, capability)
    if peaks is not None:
        return peaks, True
    logger.warning("sparse24: no datasheet peaks for device %r (capability %s); using %s's (%.2f TB/s)",
                   name, capability, DEFAULT.label, DEFAULT.hbm_tbs)
    return DEFAULT, False


def current_name_and_capability() -> tuple[str | None, tuple[int, int] | None]:
    """Name and capability of the current CUDA device, or (None, None) without one."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None, None
        return torch.cuda.get_device_name(), tuple(torch.cuda.get_device_capability())
    except Exception:  # noqa: BLE001 - a broken CUDA setup is "no device" here
        return None, None


def current() -> DevicePeaks | None:
    return lookup(*current_name_and_capability())
