"""How far apart two correct implementations of a random Llama can be: bf16 vs fp32 of the *same* reference.

    python -m sparse24.loadtest.engine_bench.rounding_floor [--hidden 512] [--layers 2 32] [--gain 0.45 1.28]

A random Llama whose linears have init std s and fan-in K has a per-layer gain of about s * sqrt(K): 0.45 for the
tiny model's 512 width at HF's s = 0.02, 1.28 for the Llama-3.1-8B width (K = 4096). Above ~1 every layer amplifies
rounding differences, so end-to-end log-probabilities of a deep random model differ between bf16 and fp32 by far
more than any kernel bound. This runs the experiment at a small width with s chosen to reproduce each gain, on CPU
in a few minutes, and prints mean / p99 |lp_bf16 - lp_fp32| (teacher-forced, random tokens). Result on the 2-core
CPU box, 2026-11-30: gain 0.45 -> 0.004 (2 layers) / 0.006 (32); gain 1.28 -> 0.030 (2) / 0.107 (32) nats.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys

import torch

from .logprobs import compare, random_sequences, reference_scores


def floor(hidden: int, layers: int, gain: float, seqs: list[list[int]], vocab: int = 1024) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    std = gain / math.sqrt(hidden)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 7 // 2 // 128 * 128, num_hidden_layers=layers,
                      num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 256),
                      vocab_size=vocab, initializer_range=std)
    torch.manual_seed(0)
    fp32 = LlamaForCausalLM(cfg).float().eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    c = compare(reference_scores(bf16, seqs), reference_scores(fp32, seqs))
    return {"hidden": hidden, "layers": layers, "gain": gain, "init_std": std, "mean_abs": c.mean_abs,
            "p99_abs": c.p99_abs, "top1_agree": c.top1_agree}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, nargs="+", default=[2, 32])
    p.add_argument("--gain", type=float, nargs="+", default=[0.45, 1.28])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--out", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    seqs = random_sequences(2, args.tokens, 1024, seed=0)
    rows = []
    for gain in args.gain:
        for layers in args.layers:
            r = floor(args.hidden, layers, gain, seqs)
            rows.append(r)
            print(f"gain {gain:.2f} layers {layers:3d}: bf16 vs fp32 mean {r['mean_abs']:.4f} p99 {r['p99_abs']:.4f} "
                  f"top-1 agree {r['top1_agree']:.1%}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
