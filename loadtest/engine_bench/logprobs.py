"""Teacher-forced log-probabilities: vLLM (with our plugin) against our reference, on the same checkpoint.

Why teacher-forced: greedy token agreement is fragile. One near-tie (two tokens within a rounding error of each
other) flips the path and every later token differs, so "agrees for 9 tokens" says nothing about the size of
the error. Scoring the same token sequence in both implementations measures it directly, position by position.

The reference is transformers' Llama running the checkpoint through `sparse24.kernels` on its exact reference
path (`kernels.quality.load_sparse_checkpoint_as_hf`): per-token FP8 activations exactly as `kernels/reference.py`
defines them, fp32 accumulation, the same dtype as the engine.

Tolerance, and why. Per-token FP8 (e4m3, 3 mantissa bits) rounds each activation to a grid 1/16 as fine as its
binade. Two correct implementations whose bf16 hidden states differ in the last bit (summation order in attention,
norms, GEMMs) round some activations to *neighbouring* FP8 values, a 6% step of that element, so a sparse-FP8 engine
cannot match the reference as closely as a bf16 engine matches bf16. On top, both round the logits to bf16
(0.004 nats apart near |logit| ~ 1). We require, teacher-forced over every scored position:
* mean |lp_engine - lp_ref| <= MEAN_ABS_NATS (0.02: a 2% probability error on average) and
  p99 <= P99_ABS_NATS (0.1);
* no top-1 disagreement except at near-ties (the reference's top-2 margin below NEAR_TIE_NATS).
When the reference was also run in fp32 (`ref_fp32`), the bounds widen to FLOOR_MULTIPLE x the reference's own
bf16-vs-fp32 difference where that is larger: an engine in bf16 cannot be held closer to a bf16 reference than
the reference is to itself in fp32. Likewise the near-tie margin widens to FLOOR_MULTIPLE x the largest top-2
margin at which the bf16 reference itself picks another top-1 than its fp32 run (measured 2026-12-04 at the 8B
width with FP8 activations: the reference flips against itself at margins up to 0.5 nats). This matters for deep random models: at the Llama-3.1-8B width a random
layer has a gain of ~1.3 and rounding differences grow layer by layer (rounding_floor.py).
Reported beside them, for scale: the effect of FP8 activation quantization itself on the reference,
|lp(fp8 activations) - lp(same weights, unquantized activations)|, and the dense bf16 engine's error vs its own
reference (the floor any bf16 engine has).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

MEAN_ABS_NATS = 0.02
P99_ABS_NATS = 0.1
FLOOR_MULTIPLE = 2.0
NEAR_TIE_NATS = 0.1  # a top-1 disagreement is accepted only where the reference's top-2 margin is below this


@dataclass
class PositionScores:
    """Per scored position (tokens 1..L-1 of a sequence): lp of the actual next token, the argmax and its margin."""

    actual: list[float]
    top1: list[int]
    top1_lp: list[float]
    margin: list[float]  # top-1 minus top-2 log-probability (reference only; NaN where unknown)


def random_sequences(num: int, length: int, vocab: int, seed: int = 0, low: int = 3) -> list[list[int]]:
    """Deterministic random token sequences (ids in [low, vocab)): the model's own distribution is irrelevant."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, vocab, (num, length), generator=g).tolist()


@torch.no_grad()
def reference_scores(model, seqs: list[list[int]], device: str = "cpu") -> list[PositionScores]:
    """Score each sequence with a transformers causal LM (one forward per sequence)."""
    out = []
    for ids in seqs:
        x = torch.tensor([ids], device=device)
        lp = torch.log_softmax(model(x).logits[0, :-1].float(), dim=-1)
        nxt = x[0, 1:]
        top2 = lp.topk(2, dim=-1)
        out.append(PositionScores(
            actual=lp.gather(1, nxt[:, None])[:, 0].tolist(), top1=top2.indices[:, 0].tolist(),
            top1_lp=top2.values[:, 0].tolist(), margin=(top2.values[:, 0] - top2.values[:, 1]).tolist()))
    return out


def vllm_scores(llm, seqs: list[list[int]]) -> list[PositionScores]:
    """Score each sequence with a vLLM `LLM` (prompt_logprobs: raw log-probabilities of the prompt tokens)."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
    outs = llm.generate([{"prompt_token_ids": ids} for ids in seqs], params, use_tqdm=False)
    result = []
    for ids, o in zip(seqs, outs):
        actual, top1, top1_lp = [], [], []
        for tok, entry in zip(ids[1:], o.prompt_logprobs[1:]):
            actual.append(entry[tok].logprob)
            best = next(t for t, v in entry.items() if v.rank == 1)
            top1.append(best)
            top1_lp.append(entry[best].logprob)
        result.append(PositionScores(actual=actual, top1=top1, top1_lp=top1_lp, margin=[math.nan] * len(actual)))
    return result


def _flat(scores: list[PositionScores], field: str) -> torch.Tensor:
    return torch.tensor([v for s in scores for v in getattr(s, field)], dtype=torch.float64)


@dataclass
class Comparison:
    positions: int
    mean_abs: float
    p99_abs: float
    max_abs: float
    top1_agree: float
    top1_disagree_outside_ties: int
    quant_effect_mean_abs: float | None
    rounding_floor_mean_abs: float | None
    tolerance_mean_abs: float
    tolerance_p99_abs: float
    near_tie_nats: float
    ok: bool

    def to_dict(self) -> dict:
        return asdict(self)


def compare(engine: list[PositionScores], ref: list[PositionScores],
            ref_unquantized: list[PositionScores] | None = None,
            ref_fp32: list[PositionScores] | None = None) -> Comparison:
    """Engine vs reference on the same sequences (bounds in the module docstring); `ref_unquantized` adds the
    FP8-activation effect for scale; `ref_fp32` (the same reference in fp32) sets the rounding floor."""
    d = (_flat(engine, "actual") - _flat(ref, "actual")).abs()
    quant = None
    if ref_unquantized is not None:
        quant = float((_flat(ref, "actual") - _flat(ref_unquantized, "actual")).abs().mean())
    tol_mean, tol_p99, near_tie, floor = MEAN_ABS_NATS, P99_ABS_NATS, NEAR_TIE_NATS, None
    if ref_fp32 is not None:
        f = (_flat(ref, "actual") - _flat(ref_fp32, "actual")).abs()
        floor = float(f.mean())
        tol_mean = max(tol_mean, FLOOR_MULTIPLE * floor)
        tol_p99 = max(tol_p99, FLOOR_MULTIPLE * float(torch.quantile(f, 0.99)))
        near_tie = max(near_tie, float(torch.quantile(f, 0.99)))
    e1, r1, margin = _flat(engine, "top1"), _flat(ref, "top1"), _flat(ref, "margin")
    if ref_fp32 is not None:
        own_flips = r1 != _flat(ref_fp32, "top1")  # where the reference disagrees with itself in fp32
        if bool(own_flips.any()):
            near_tie = max(near_tie, FLOOR_MULTIPLE * float(margin[own_flips].max()))
    disagree = e1 != r1
    outside = int((disagree & ~(margin < near_tie)).sum())
    mean_abs, p99 = float(d.mean()), float(torch.quantile(d, 0.99))
    ok = outside == 0 and mean_abs <= tol_mean and p99 <= tol_p99
    return Comparison(
        positions=int(d.numel()), mean_abs=mean_abs, p99_abs=p99, max_abs=float(d.max()),
        top1_agree=float((~disagree).double().mean()), top1_disagree_outside_ties=outside,
        quant_effect_mean_abs=quant, rounding_floor_mean_abs=floor, tolerance_mean_abs=tol_mean,
        tolerance_p99_abs=tol_p99, near_tie_nats=near_tie, ok=ok)


def scores_to_json(scores: list[PositionScores]) -> list[dict]:
    return [asdict(s) for s in scores]


def scores_from_json(data: list[dict]) -> list[PositionScores]:
    return [PositionScores(**d) for d in data]
