"""2:4 pruning methods, selected by name (`sparse24 compress --pruner NAME`).

A pruner maps a dense weight [N, K] (and optional calibration statistics) to a bool keep-mask with exactly
2 of every 4 consecutive elements along K kept. Magnitude is the default; a calibration-based method
(e.g. SparseGPT, which needs the layer's input Hessian) registers itself the same way.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch


class Pruner(Protocol):
    def __call__(self, weight: torch.Tensor, calibration: dict | None = None) -> torch.Tensor: ...


PRUNERS: dict[str, Pruner] = {}


def register_pruner(name: str) -> Callable[[Pruner], Pruner]:
    def wrap(fn: Pruner) -> Pruner:
        PRUNERS[name] = fn
        return fn

    return wrap


def get_pruner(name: str) -> Pruner:
    if name not in PRUNERS:
        raise ValueError(f"unknown pruner {name!r}; known: {', '.join(sorted(PRUNERS))}")
    return PRUNERS[name]


@register_pruner("magnitude")
def magnitude_2of4(weight: torch.Tensor, calibration: dict | None = None) -> torch.Tensor:
    """Keep the 2 largest |w| of every group of 4 along K (ties: the lower position wins)."""
    n, k = weight.shape
    if k % 4:
        raise ValueError(f"K={k} is not a multiple of 4: cannot prune 2:4")
    groups = weight.float().abs().view(n, k // 4, 4)
    # Stable sort so ties keep the lower position: deterministic across machines.
    order = torch.sort(groups, dim=-1, descending=True, stable=True).indices[..., :2]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True)
    return mask.view(n, k)
