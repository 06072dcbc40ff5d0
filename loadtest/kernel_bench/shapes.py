"""Linear-layer weight shapes (N, K) benchmarked and tuned, and random 2:4 FP8 operands for them."""
from __future__ import annotations

import torch

# weight [N, K] = [out_features, in_features]; qkv and gate_up are the fused projections vLLM runs
LLAMA_3_1_8B = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
LLAMA_3_1_70B = {"qkv": (10240, 8192), "o": (8192, 8192), "gate_up": (57344, 8192), "down": (8192, 28672)}
FIG3 = (28672, 4096)  # the seed blog's Fig 3 weight (4096 x 28672 written as K x N)
FIG3_MS = [2**i for i in range(14)]  # 1 .. 8192
M_BUCKETS = FIG3_MS


def all_shapes() -> dict[str, tuple[int, int]]:
    out = {f"llama8b.{k}": v for k, v in LLAMA_3_1_8B.items()}
    out.update({f"llama70b.{k}": v for k, v in LLAMA_3_1_70B.items()})
    return out


def random_24_fp8(n: int, k: int, device="cuda", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_fp8 [N, K] with exactly 2 non-zeros per group of 4 (magnitude-pruned gaussian), s_w [N, 1] f32)."""
    g = torch.Generator(device=device).manual_seed(seed)
    w = torch.randn(n, k, generator=g, device=device)
    grp = w.view(n, k // 4, 4)
    idx = grp.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(grp, dtype=torch.bool).scatter_(-1, idx, True)
    w = (grp * mask).view(n, k)
    s_w = (w.abs().amax(dim=1, keepdim=True) / 448.0).clamp_min(1e-8)
    w_fp8 = (w / s_w).clamp(-448, 448).to(torch.float8_e4m3fn)
    return w_fp8, s_w.float()
