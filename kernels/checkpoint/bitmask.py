"""compressed-tensors `sparse-24-bitmask` codec (its sparse compressors were removed upstream in 0.15).

On disk, per layer prefix P (e.g. `model.layers.0.mlp.down_proj`):
    P.compressed  [N, K/2]        the kept values of each row, in row-major order (fp8 here)
    P.bitmask     [N, ceil(K/8)]  uint8, 1 = kept, numpy.packbits(bitorder="little") along K
    P.shape       [2, 1]          int64, the dense shape (N, K)
Exactly two bits are set in every group of 4 along K (upstream keeps the top-2 magnitudes per group).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import layout


def encode_bitmask(w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dense 2:4 weight [N, K] -> {"compressed", "bitmask", "shape"} tensors."""
    n, k = w.shape
    kept = layout.kept_mask_2of4(w)
    raw = w.view(torch.uint8) if w.dtype == torch.float8_e4m3fn else w
    compressed = raw[kept].reshape(n, k // 2)
    if w.dtype == torch.float8_e4m3fn:
        compressed = compressed.view(torch.float8_e4m3fn)
    # The mask may live on a GPU (compress on the device); packbits runs on the host copy.
    bitmask = torch.from_numpy(np.packbits(kept.cpu().numpy(), axis=-1, bitorder="little"))
    shape = torch.tensor([[n], [k]], dtype=torch.int64)
    return {"compressed": compressed.contiguous().cpu(), "bitmask": bitmask, "shape": shape}


def unpack_bitmask(bitmask: torch.Tensor, k: int) -> torch.Tensor:
    """uint8 [N, ceil(K/8)] -> bool [N, K]."""
    bits = np.unpackbits(bitmask.numpy(), axis=-1, count=k, bitorder="little")
    return torch.from_numpy(bits.astype(bool))


def decode_bitmask(compressed: torch.Tensor, bitmask: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of encode_bitmask: scatter the kept values back into a dense [N, K] tensor.

    The caller has checked shapes (see checkpoint.loader); the mask must hold exactly K/2 bits per row.
    """
    n = compressed.shape[0]
    mask = unpack_bitmask(bitmask, k)
    is_fp8 = compressed.dtype == torch.float8_e4m3fn
    raw = compressed.view(torch.uint8) if is_fp8 else compressed
    dense = torch.zeros(n, k, dtype=raw.dtype)
    dense[mask] = raw.reshape(-1)
    return dense.view(torch.float8_e4m3fn) if is_fp8 else dense
