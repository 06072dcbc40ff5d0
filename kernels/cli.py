"""`sparse24`: make tiny models, compress dense Llamas to 2:4 FP8, inspect checkpoints, check quality."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _tiny_model(args) -> int:
    from .tiny_model import TinyLlamaSpec, make_tiny_llama, write_llama_8b_config

    if args.shape == "llama-3.1-8b":
        out = write_llama_8b_config(args.out_dir)
        print(f"wrote Llama-3.1-8B-shaped config + tokenizer (no weights) to {out}")
        return 0
    spec = TinyLlamaSpec(seed=args.seed, num_hidden_layers=args.layers, hidden_size=args.hidden_size,
                         intermediate_size=args.intermediate_size)
    out = make_tiny_llama(args.out_dir, spec)
    print(f"wrote tiny Llama ({spec.num_hidden_layers} layers, hidden {spec.hidden_size}) to {out}")
    if args.sparse_out:
        from .checkpoint import compress_checkpoint

        summary = compress_checkpoint(out, args.sparse_out, args.format, progress=not args.quiet)
        print(summary.render())
    return 0


def _compress(args) -> int:
    from .checkpoint import compress_checkpoint

    summary = compress_checkpoint(args.model_dir, args.out_dir, args.format, args.pruner,
                                  ignore=args.ignore, progress=not args.quiet, scheme=args.scheme, device=args.device)
    print(summary.render())
    print(f"wrote {args.out_dir}")
    return 0


def _model_set(args) -> int:
    from .model_set import make_model_set

    manifest = make_model_set(args.out_dir, args.shape, args.seed, args.device, tuple(args.variants),
                              progress=not args.quiet, layers=args.layers)
    for name, step in manifest["steps"].items():
        print(f"{name:15s} {step['seconds']:7.1f} s  {step['bytes'] / 2**30:7.2f} GiB  {manifest['variants'][name]}")
    print(f"total {manifest['total_seconds']} s on {manifest['device']} ({manifest['note']})")
    return 0


def _inspect(args) -> int:
    from .checkpoint.inspect import inspect_checkpoint

    report = inspect_checkpoint(args.model_dir)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def _quality(args) -> int:
    from .quality import quality_report, render_quality

    report = quality_report(args.dense_dir, args.sparse_dir, args.max_tokens)
    print(render_quality(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .checkpoint.format import SPARSITY_FORMATS

    p = argparse.ArgumentParser(prog="sparse24", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tiny-model", help="write a deterministic tiny HF Llama (or an 8B-shaped config)")
    t.add_argument("out_dir")
    t.add_argument("--shape", choices=["tiny", "llama-3.1-8b"], default="tiny")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--hidden-size", type=int, default=256)
    t.add_argument("--intermediate-size", type=int, default=512)
    t.add_argument("--sparse-out", help="also write its 2:4 FP8 checkpoint here")
    t.add_argument("--format", choices=SPARSITY_FORMATS, default="sparse-24-bitmask")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=_tiny_model)

    c = sub.add_parser("compress", help="dense HF Llama -> 2:4 sparse FP8 compressed-tensors checkpoint")
    c.add_argument("model_dir")
    c.add_argument("out_dir")
    c.add_argument("--format", choices=SPARSITY_FORMATS, default="sparse-24-bitmask",
                   help="sparsity format on disk (dense: 2:4 zeros stored densely, like the RedHatAI models)")
    c.add_argument("--pruner", default="magnitude", help="2:4 pruning method (default: magnitude)")
    c.add_argument("--ignore", nargs="*", default=None, help="module names left dense (default: lm_head)")
    c.add_argument("--scheme", choices=["sparse24", "fp8-dynamic"], default="sparse24",
                   help="sparse24: 2:4 prune + FP8 (default); fp8-dynamic: FP8 only, the dense baseline")
    c.add_argument("--device", default="cpu", help="where pruning/quantization run: cpu, cuda, auto (default cpu)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(fn=_compress)

    from .model_set import SHAPES, VARIANTS

    m = sub.add_parser("model-set", help="bf16 + fp8 + 2:4 fp8 (bitmask and dense formats) from the same weights")
    m.add_argument("out_dir")
    m.add_argument("--shape", choices=SHAPES, default="llama-3.1-8b")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="auto", help="where weights are generated and compressed (default: GPU if any)")
    m.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    m.add_argument("--layers", type=int, help="8B shape with fewer decoder layers (numerics checks)")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(fn=_model_set)

    i = sub.add_parser("inspect", help="check a 2:4 FP8 checkpoint layer by layer (exit 1 if a layer fails)")
    i.add_argument("model_dir")
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=_inspect)

    q = sub.add_parser("quality", help="perplexity: dense bf16 vs its 2:4 FP8 checkpoint on the bundled text")
    q.add_argument("dense_dir")
    q.add_argument("sparse_dir")
    q.add_argument("--max-tokens", type=int, default=4096)
    q.add_argument("--out", help="also write the report JSON here")
    q.set_defaults(fn=_quality)
    return p


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from .checkpoint.format import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (CheckpointError, FileNotFoundError, ValueError, ValidationError) as e:
        print(f"sparse24 {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
