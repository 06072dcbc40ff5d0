"""The torch-only sparse-FP8 linear the plugin calls, on fused qkv / gate_up weights (vLLM's layer layout).

A per-tensor checkpoint has one FP8 scale per original layer; the plugin fuses the shards and converts
the scales to per-channel. The fused op must equal, exactly, the reference run shard by shard (per-token
activation quantization depends only on x, so concatenating per-shard outputs is the same math).
CPU here; on a CUDA machine the same test runs the GPU backend against the reference with a tolerance.
"""
from __future__ import annotations

import pytest
import torch

from sparse24.kernels import reference
from sparse24.kernels.checkpoint.prune import get_pruner
from sparse24.kernels.linear import pack_sparse_fp8_weight, sparse_fp8_linear
from sparse24.serve_app.vllm_plugin.tensor_parallel import per_tensor_to_per_channel

FUSED = {  # name -> (output widths of the fused shards, K): tiny model and Llama-3.1-8B (TP 8) shapes
    "qkv_tiny": ([256, 128, 128], 256),
    "gate_up_tiny": ([512, 512], 256),
    "qkv_8b_tp8": ([512, 128, 128], 4096),
    "gate_up_8b_tp8": ([1792, 1792], 4096),
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _per_tensor_shard(n: int, k: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.randn(n, k, generator=g) * 0.05
    w = w * get_pruner("magnitude")(w)
    s = w.abs().amax() / reference.FP8_E4M3_MAX
    return torch.clamp(w / s, -448, 448).to(torch.float8_e4m3fn), s.reshape(1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(FUSED))
@pytest.mark.parametrize("m", [1, 7, 64])
def test_fused_layer_with_per_tensor_scales_matches_per_shard_reference(name, m, device):
    widths, k = FUSED[name]
    g = torch.Generator().manual_seed(hash(name) % 2**31)
    shards = [_per_tensor_shard(n, k, g) for n in widths]
    w = torch.cat([s[0] for s in shards])
    scale = per_tensor_to_per_channel(torch.cat([s[1] for s in shards]), widths)
    bias = torch.randn(sum(widths), generator=g).to(torch.bfloat16)
    x = torch.randn(m, k, generator=g).to(torch.bfloat16)

    expected = torch.cat([
        reference.sparse_fp8_linear_reference(x, ws, ss.expand(ws.shape[0]), b, out_dtype=torch.bfloat16)
        for (ws, ss), b in zip(shards, bias.split(widths))
    ], dim=-1)
    packed = pack_sparse_fp8_weight(w.to(device), scale.to(device))
    got = sparse_fp8_linear(x.to(device), packed, bias.to(device)).cpu()
    assert got.dtype == torch.bfloat16 and got.shape == (m, sum(widths))
    if device == "cpu":
        assert torch.equal(got, expected)
    else:
        # GPU: Hopper's FP8 tensor cores accumulate with less than fp32 precision (measured here ~2^-13 of the
        # sum of |products|), and the order differs. Bound each element by 2^-11 of that L1 sum (4x headroom)
        # plus one bf16 ulp of the result: a wrong metadata index or scale gives errors of order the L1 sum.
        xq, s_x = reference.quantize_per_token_fp8(x)
        l1 = (xq.float().abs() @ w.float().abs().t()) * scale.reshape(1, -1) * s_x
        bound = l1 * 2.0 ** -11 + expected.float().abs() * 2.0 ** -7 + 1e-6
        assert torch.all((got.float() - expected.float()).abs() <= bound)


def test_per_tensor_to_per_channel_rejects_a_scale_count_that_does_not_match_the_shards():
    with pytest.raises(ValueError, match="2 per-tensor scales for 3 fused shards"):
        per_tensor_to_per_channel(torch.ones(2), [256, 128, 128])
