"""Numerics of the engine path: vLLM + our plugin vs our reference, teacher-forced (see logprobs.py for the why).

    python -m sparse24.loadtest.engine_bench.numerics seqs  --model DIR --out seqs.json [--num 4 --length 256]
    python -m sparse24.loadtest.engine_bench.numerics ref   --model DIR --mode sparse-fp8 --seqs seqs.json \
           --out ref.json [--device cuda] [--greedy-from engine_sparse24.json]
    python -m sparse24.loadtest.engine_bench.numerics report --dir RESULTS_DIR --out numerics.json

`ref --dtype float32` writes the same reference in fp32: name it ref_<variant>_<mode>_fp32.json and the report uses
it as the rounding floor (logprobs.compare). `ref` modes: `sparse-fp8` (the product's math on the reference path), `dequantized` (same weights, activations
not quantized: isolates the FP8-activation effect), `dense` (a dense bf16 checkpoint, for the bf16 engine).
File names the report expects in --dir: engine_<variant>.json (run_engine.py, jobs logprobs/greedy) and
ref_<variant>_<mode>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from . import logprobs as lp

MODES = ("sparse-fp8", "dequantized", "dense")


def _vocab(model_dir: str) -> int:
    return int(json.loads(Path(model_dir, "config.json").read_text())["vocab_size"])


def cmd_seqs(args) -> int:
    seqs = lp.random_sequences(args.num, args.length, _vocab(args.model), seed=args.seed)
    Path(args.out).write_text(json.dumps({"num": args.num, "length": args.length, "seed": args.seed,
                                          "sequences": seqs}))
    print(f"wrote {args.num} sequences of {args.length} tokens to {args.out}")
    return 0


def _load(model: str, mode: str, device: str, dtype: torch.dtype):
    from ...kernels.quality import load_dense_hf, load_sparse_checkpoint_as_hf

    if mode == "dense":
        return load_dense_hf(model, dtype=dtype, device=device)
    return load_sparse_checkpoint_as_hf(model, mode=mode, dtype=dtype, device=device)


def cmd_ref(args) -> int:
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    model = _load(args.model, args.mode, args.device, dtype)
    load_s = time.perf_counter() - t0
    seqs = json.loads(Path(args.seqs).read_text())["sequences"]
    out = {"model": args.model, "mode": args.mode, "dtype": args.dtype, "device": args.device, "load_s": load_s,
           "scores": lp.scores_to_json(lp.reference_scores(model, seqs, args.device))}
    if args.greedy_from:
        engine = json.loads(Path(args.greedy_from).read_text())
        out["greedy_from"] = args.greedy_from
        out["greedy_scores"] = lp.scores_to_json(lp.reference_scores(model, engine["greedy"]["sequences"], args.device))
    Path(args.out).write_text(json.dumps(out))
    print(f"ref {args.mode} on {args.device}: {len(seqs)} sequences scored ({load_s:.0f} s load) -> {args.out}")
    return 0


def _gap_table(ref_greedy: list[dict], prompt_tokens: int, sequences: list[list[int]]) -> dict:
    """Per generated position: did the engine pick the reference's argmax, and if not, the gap in nats."""
    rows = []
    for seq, s in zip(sequences, ref_greedy):
        first = None
        worst = 0.0
        for i in range(prompt_tokens - 1, len(s["actual"])):
            chosen = seq[i + 1]
            if chosen != s["top1"][i]:
                gap = s["top1_lp"][i] - s["actual"][i]
                worst = max(worst, gap)
                if first is None:
                    first = {"generated_index": i + 1 - prompt_tokens, "gap_nats": gap}
        rows.append({"first_disagreement": first, "worst_gap_nats": worst})
    return {"per_sequence": rows, "worst_gap_nats": max((r["worst_gap_nats"] for r in rows), default=0.0)}


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def cmd_report(args) -> int:
    d = Path(args.dir)
    report: dict = {"tolerance": {"mean_abs_nats": lp.MEAN_ABS_NATS, "p99_abs_nats": lp.P99_ABS_NATS,
                                  "near_tie_nats": lp.NEAR_TIE_NATS, "floor_multiple": lp.FLOOR_MULTIPLE},
                    "checks": {}}
    for engine_file in sorted(d.glob("engine_*.json")):
        variant = engine_file.stem[len("engine_"):]
        eng = _read(engine_file)
        if not eng or "logprobs" not in eng:
            continue
        # A sparse engine is checked against the sparse-fp8 reference, a dense one against the dense reference.
        mode = "sparse-fp8" if (d / f"ref_{variant}_sparse-fp8.json").is_file() else "dense"
        ref = _read(d / f"ref_{variant}_{mode}.json")
        if not ref:
            continue
        unq = _read(d / f"ref_{variant}_dequantized.json") if mode == "sparse-fp8" else None
        f32 = _read(d / f"ref_{variant}_{mode}_fp32.json")
        cmp = lp.compare(lp.scores_from_json(eng["logprobs"]["scores"]), lp.scores_from_json(ref["scores"]),
                         lp.scores_from_json(unq["scores"]) if unq else None,
                         lp.scores_from_json(f32["scores"]) if f32 else None)
        entry = {"reference": mode, **cmp.to_dict(), "engine": eng.get("engine"), "meta": eng.get("meta")}
        if "greedy_scores" in ref and "greedy" in eng:
            entry["greedy"] = _gap_table(ref["greedy_scores"], eng["greedy"]["prompt_tokens"], eng["greedy"]["sequences"])
        report["checks"][variant] = entry
    Path(args.out).write_text(json.dumps(report, indent=1))
    for v, c in report["checks"].items():
        quant = c["quant_effect_mean_abs"]
        print(f"{v:16s} vs {c['reference']:10s}: mean|dlp| {c['mean_abs']:.4f} (<= {c['tolerance_mean_abs']:.4f})"
              f"  p99 {c['p99_abs']:.4f} (<= {c['tolerance_p99_abs']:.4f})"
              + (f"  [fp8-activation effect {quant:.4f}]" if quant is not None else "")
              + (f"  [bf16-vs-fp32 floor {c['rounding_floor_mean_abs']:.4f}]" if c["rounding_floor_mean_abs"] else "") + f"  max {c['max_abs']:.4f}  top1 {c['top1_agree']:.1%}"
              f"  flips outside ties (margin >= {c['near_tie_nats']:.3f}) {c['top1_disagree_outside_ties']}"
              f"  {'OK' if c['ok'] else 'FAIL'}"
              + (f"  greedy worst gap {c['greedy']['worst_gap_nats']:.4f}" if "greedy" in c else ""))
    return 0 if all(c["ok"] for c in report["checks"].values()) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seqs")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--num", type=int, default=4)
    s.add_argument("--length", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_seqs)
    r = sub.add_parser("ref")
    r.add_argument("--model", required=True)
    r.add_argument("--mode", choices=MODES, required=True)
    r.add_argument("--seqs", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--device", default="cpu")
    r.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    r.add_argument("--greedy-from", help="engine JSON with a `greedy` job: also score its continuations")
    r.set_defaults(fn=cmd_ref)
    q = sub.add_parser("report")
    q.add_argument("--dir", required=True)
    q.add_argument("--out", required=True)
    q.set_defaults(fn=cmd_report)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
