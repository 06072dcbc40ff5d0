"""A compact Llama (gpt-fast style) for model-level GPU benchmarks: args dataclass, plain modules, static KV cache.

The three benchmark variants share every tensor except the linear layers (model_linears.py): the
embedding, norms, LM head (kept bf16, as in published FP8 Llama checkpoints) and the KV cache are the
same objects. Weights are either random (generated on the device from the config alone: speed does not
depend on weight values) or copied from a HF `LlamaForCausalLM` (tests check our forward against it).

Two entry points, both CUDA-graph capturable (all shapes static, positions live in device tensors):
    prefill(tokens [B, T], cache)           fresh sequences from position 0; logits of the last token
    decode(tokens [B], positions [B], cache) one token per sequence at positions[b]; logits [B, V]
Llama-3.1's "llama3" RoPE frequency scaling is not applied (it changes values, not cost).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.profiler import record_function

from . import model_fused_quant as FQ
from . import model_kernels as K
from .model_linears import make_linear


@dataclass
class ModelArgs:
    """Llama dimensions (tokens, features)."""

    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 8
    intermediate_size: int = 14336
    vocab_size: int = 128256
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def __post_init__(self):
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(f"bad head split: dim={self.dim} heads={self.n_heads} kv_heads={self.n_kv_heads}")

    @classmethod
    def llama_31_8b(cls) -> "ModelArgs":
        from ...kernels.tiny_model import LLAMA_31_8B as c

        return cls(dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=c["num_attention_heads"],
                   n_kv_heads=c["num_key_value_heads"], intermediate_size=c["intermediate_size"],
                   vocab_size=c["vocab_size"], rope_theta=c["rope_theta"], norm_eps=c["rms_norm_eps"])

    @classmethod
    def tiny(cls) -> "ModelArgs":
        """Small enough for CPU tests; every linear shape legal for the 2:4 kernels (K % 64, N % 128)."""
        return cls(dim=256, n_layers=2, n_heads=4, n_kv_heads=2, intermediate_size=512, vocab_size=1024)

    @classmethod
    def from_hf_config(cls, cfg) -> "ModelArgs":
        return cls(dim=cfg.hidden_size, n_layers=cfg.num_hidden_layers, n_heads=cfg.num_attention_heads,
                   n_kv_heads=cfg.num_key_value_heads, intermediate_size=cfg.intermediate_size,
                   vocab_size=cfg.vocab_size, rope_theta=float(getattr(cfg, "rope_theta", None) or
                                                               cfg.rope_parameters["rope_theta"]),
                   norm_eps=cfg.rms_norm_eps)


@dataclass
class LayerWeights:
    attn_norm: torch.Tensor  # [D]
    ffn_norm: torch.Tensor  # [D]
    wqkv: torch.Tensor  # [(H + 2 KVH) * Dh, D]  q | k | v rows
    wo: torch.Tensor  # [D, H * Dh]
    w_gate_up: torch.Tensor  # [2 I, D]  gate | up rows
    w_down: torch.Tensor  # [D, I]


@dataclass
class LlamaWeights:
    embed: torch.Tensor  # [V, D]
    norm: torch.Tensor  # [D]
    lm_head: torch.Tensor  # [V, D]
    layers: list[LayerWeights] = field(default_factory=list)


def random_weights(args: ModelArgs, device, dtype=torch.bfloat16, seed: int = 0, std: float = 0.02) -> LlamaWeights:
    """N(0, std) weights (HF's initializer_range), norms near 1; generated directly on `device`."""
    g = torch.Generator(device=device).manual_seed(seed)

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * std).to(dtype)

    def norm():
        return (1.0 + torch.randn(args.dim, generator=g, device=device) * 0.1).to(dtype)

    hd, q_rows = args.head_dim, args.n_heads * args.head_dim
    layers = [LayerWeights(norm(), norm(), rnd(q_rows + 2 * args.n_kv_heads * hd, args.dim), rnd(args.dim, q_rows),
                           rnd(2 * args.intermediate_size, args.dim), rnd(args.dim, args.intermediate_size))
              for _ in range(args.n_layers)]
    return LlamaWeights(rnd(args.vocab_size, args.dim), norm(), rnd(args.vocab_size, args.dim), layers)


def weights_from_hf(model) -> LlamaWeights:
    """Copy a HF LlamaForCausalLM's tensors, fusing q/k/v and gate/up rows."""
    m = model.model
    layers = []
    for lyr in m.layers:
        a, f = lyr.self_attn, lyr.mlp
        layers.append(LayerWeights(
            lyr.input_layernorm.weight.detach(), lyr.post_attention_layernorm.weight.detach(),
            torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach(), a.o_proj.weight.detach(),
            torch.cat([f.gate_proj.weight, f.up_proj.weight]).detach(), f.down_proj.weight.detach()))
    return LlamaWeights(m.embed_tokens.weight.detach(), m.norm.weight.detach(), model.lm_head.weight.detach(), layers)


class KVCache:
    """Static cache: k, v [n_layers, B, KVH, max_seq, Dh]. Random contents by default (never time on zeros)."""

    def __init__(self, args: ModelArgs, batch: int, max_seq: int, device, dtype=torch.bfloat16, fill: str = "random"):
        shape = (args.n_layers, batch, args.n_kv_heads, max_seq, args.head_dim)
        make = torch.randn if fill == "random" else torch.zeros
        self.k = make(shape, device=device, dtype=dtype)
        self.v = make(shape, device=device, dtype=dtype)
        self.batch, self.max_seq = batch, max_seq

    @property
    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, wqkv: nn.Module, wo: nn.Module):
        super().__init__()
        self.args, self.wqkv, self.wo = args, wqkv, wo

    def forward(self, x, positions, tokens_per_seq, seq_lens, rope, k_cache, v_cache):
        a = self.args
        m = (x[0] if isinstance(x, tuple) else x).shape[0]  # x may be a pre-quantized (xq, s_x)
        with record_function("linear.qkv"):
            qkv = self.wqkv(x)
        with record_function("rope_cache"):
            q = K.rope_and_cache(qkv, positions, tokens_per_seq, rope[0], rope[1], k_cache, v_cache,
                                 a.n_heads, a.n_kv_heads)
        with record_function("attention"):
            if seq_lens is not None:  # decode: one token per sequence
                o = K.decode_attention(q, k_cache, v_cache, seq_lens)
            else:  # prefill from position 0: causal attention over the fresh tokens
                b, t = m // tokens_per_seq, tokens_per_seq
                g = a.n_heads // a.n_kv_heads
                kk = k_cache[:, :, :t].repeat_interleave(g, dim=1)
                vv = v_cache[:, :, :t].repeat_interleave(g, dim=1)
                qq = q.view(b, t, a.n_heads, a.head_dim).transpose(1, 2)
                o = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True).transpose(1, 2)
        with record_function("linear.o"):
            return self.wo(o.reshape(m, a.n_heads * a.head_dim))


class FeedForward(nn.Module):
    def __init__(self, w_gate_up: nn.Module, w_down: nn.Module):
        super().__init__()
        self.w_gate_up, self.w_down = w_gate_up, w_down

    def forward(self, x, fuse_quant: bool = False):
        with record_function("linear.gate_up"):
            gu = self.w_gate_up(x)
        with record_function("silu_mul"):
            h = FQ.silu_mul_quant(gu) if fuse_quant else K.silu_mul(gu)
        with record_function("linear.down"):
            return self.w_down(h)


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs, lw: LayerWeights, variant: str):
        super().__init__()
        self.attn_norm, self.ffn_norm = lw.attn_norm, lw.ffn_norm  # shared tensors, not copies
        self.attention = Attention(args, make_linear(lw.wqkv, variant), make_linear(lw.wo, variant))
        self.feed_forward = FeedForward(make_linear(lw.w_gate_up, variant), make_linear(lw.w_down, variant))


class Transformer(nn.Module):
    """Llama decoder; `variant` picks the linear layers, every other tensor is the one in `weights`.

    A variant named `<fp8 variant>_fq` (fp8_fq, sparse_fp8_fq) quantizes activations inside the
    preceding RMSNorm / SiLU-and-mul (model_fused_quant.py) instead of inside the linear; pass `layers`
    to reuse another model's linear modules (no second copy of the weights)."""

    def __init__(self, args: ModelArgs, weights: LlamaWeights, variant: str, max_seq: int,
                 layers: nn.ModuleList | None = None):
        super().__init__()
        self.args, self.variant, self.weights = args, variant, weights
        self.fuse_quant = variant.endswith("_fq")
        base = variant[:-3] if self.fuse_quant else variant
        if self.fuse_quant and base not in ("fp8", "sparse_fp8"):
            raise ValueError(f"fused quantization needs an fp8 variant, got {variant!r}")
        self.layers = layers if layers is not None else nn.ModuleList(
            TransformerBlock(args, lw, base) for lw in weights.layers)
        self.rope = K.rope_tables(args.head_dim, max_seq, args.rope_theta, weights.embed.device)

    def linears(self) -> dict[str, list[nn.Module]]:
        """The variant-specific modules by kind (qkv, o, gate_up, down), in layer order."""
        return {"qkv": [b.attention.wqkv for b in self.layers], "o": [b.attention.wo for b in self.layers],
                "gate_up": [b.feed_forward.w_gate_up for b in self.layers],
                "down": [b.feed_forward.w_down for b in self.layers]}

    def _body(self, tokens_flat, positions, tokens_per_seq, seq_lens, cache: KVCache):
        a, w = self.args, self.weights
        with record_function("embed"):
            h = F.embedding(tokens_flat, w.embed)
        residual = None
        fq = self.fuse_quant
        for i, blk in enumerate(self.layers):
            with record_function("norm"):
                if fq:
                    x, residual = FQ.rms_norm_quant(h, blk.attn_norm, a.norm_eps, residual)
                elif residual is None:
                    x, residual = K.rms_norm(h, blk.attn_norm, a.norm_eps), h
                else:
                    x, residual = K.rms_norm(h, blk.attn_norm, a.norm_eps, residual)
            h = blk.attention(x, positions, tokens_per_seq, seq_lens, self.rope, cache.k[i], cache.v[i])
            with record_function("norm"):
                norm = FQ.rms_norm_quant if fq else K.rms_norm
                x, residual = norm(h, blk.ffn_norm, a.norm_eps, residual)
            h = blk.feed_forward(x, fq)
        with record_function("norm"):
            x, _ = K.rms_norm(h, w.norm, a.norm_eps, residual)
        return x

    def _logits(self, x):
        with record_function("lm_head"):
            return F.linear(x, self.weights.lm_head)

    def prefill(self, tokens: torch.Tensor, cache: KVCache, positions: torch.Tensor | None = None,
                all_logits: bool = False) -> torch.Tensor:
        """tokens [B, T] at positions 0..T-1 (int32 [B*T], pass a preallocated one inside CUDA graphs).
        Returns logits [B, V] of the last token, or [B, T, V] with all_logits."""
        b, t = tokens.shape
        if positions is None:
            positions = torch.arange(t, device=tokens.device, dtype=torch.int32).repeat(b)
        x = self._body(tokens.reshape(-1), positions, t, None, cache).view(b, t, -1)
        return self._logits(x if all_logits else x[:, -1])

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """tokens [B] (int64), positions [B] (int32, device): one step; logits [B, V]."""
        x = self._body(tokens, positions, 1, positions + 1, cache)
        return self._logits(x)


def build_variants(args: ModelArgs, weights: LlamaWeights, variants, max_seq: int) -> dict[str, Transformer]:
    """One Transformer per variant over the same shared tensors (`*_fq` reuse their base's linears)."""
    models: dict[str, Transformer] = {}
    for v in sorted(variants, key=lambda v: v.endswith("_fq")):
        base = models.get(v[:-3]) if v.endswith("_fq") else None
        models[v] = Transformer(args, weights, v, max_seq, layers=base.layers if base is not None else None)
    return {v: models[v] for v in variants}
