"""Measure every compiled GEMM config per (M bucket, N, K) on this GPU and write the dispatch table.

    python -m sparse24.loadtest.kernel_bench.tune [--out kernels/tuning/<device>_sm90.json] [--shapes all|NAME,...]

For each weight shape (Llama-3.1-8B and -70B linears) and M in 1, 2, 4, ..., 8192 it times (L2 flushed,
median) each sparse config x decomposition mode, and cuBLASLt fp8 row-wise (`torch._scaled_mm`, best of
use_fast_accum on/off), all on the same pre-quantized activations. The fastest sparse choice goes in the
table; where cuBLASLt is faster by more than the 2% noise margin the bucket dispatches to it ("dense").
Each candidate is checked against the reference once per shape before it may be chosen.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from ...kernels import binding, devices, ops, reference
from ...serve_app.provenance import run_provenance
from .shapes import M_BUCKETS, all_shapes, random_24_fp8
from .timing import bench_us
from ...kernels.linear import pack_sparse_fp8_weight
from ...kernels.tuning.table import MODES, TUNING_DIR, table_name

logger = logging.getLogger(__name__)
DENSE_MARGIN = 0.98


def candidates(m: int) -> list[tuple[str, str, int]]:
    """(config, mode, splits) worth timing at this M (prunes tiles far from M)."""
    out = []
    for name in sorted(binding.config_names()):
        info = binding.config_info(name)
        tn = info["tile_n"]
        if m >= 512 and tn < 64:
            continue
        if m <= 32 and tn > 64:
            continue
        if info["stream_k"]:
            out += [(name, "heuristic", 1), (name, "stream_k", 1)]
            if m <= 1024:
                out += [(name, "split_k", 2)]
        else:
            out.append((name, "heuristic", 1))
    return out


def dense_us(xq, s_x, w_t, s_w) -> tuple[float, bool]:
    best = None
    for fast in (False, True):
        t = bench_us(lambda: torch._scaled_mm(xq, w_t, scale_a=s_x, scale_b=s_w.reshape(1, -1),
                                              out_dtype=torch.bfloat16, use_fast_accum=fast), budget_ms=15)
        if best is None or t < best[0]:
            best = (t, fast)
    return best


def tune_shape(n: int, k: int, ms: list[int]) -> tuple[list[dict], list[dict]]:
    w, s_w = random_24_fp8(n, k, seed=n + k)
    packed = pack_sparse_fp8_weight(w, s_w)
    st = packed.gpu_state
    w_t = w.t()
    buckets, raw = [], []
    verified: dict[tuple, bool] = {}
    for m in ms:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        xq, s_x = ops.quantize_per_token(x)
        ref = None
        best = None
        for cfg, mode, splits in candidates(m):
            cid = binding.config_names()[cfg]

            def run():
                return ops.sparse_gemm(xq, s_x, st.a_values, st.e_meta, st.s_w, None, torch.bfloat16, cid,
                                       MODES[mode], splits)

            key = (cfg, mode, splits)
            try:
                if key not in verified or m in (1, 128):
                    if ref is None:
                        ref = reference.scaled_fp8_mm_reference(xq, s_x, w, s_w, None, torch.bfloat16).double()
                    y = run().double()
                    rel = ((y - ref).norm() / ref.norm()).item()
                    verified[key] = rel < 1e-2
                    if not verified[key]:
                        logger.warning("%s N=%d K=%d M=%d: rel err %.2e, excluded", key, n, k, m, rel)
                if not verified[key]:
                    continue
                t = bench_us(run, budget_ms=10, max_reps=25)
            except RuntimeError as e:
                logger.warning("%s N=%d K=%d M=%d failed: %s", key, n, k, m, e)
                continue
            raw.append({"n": n, "k": k, "m": m, "config": cfg, "mode": mode, "splits": splits, "us": round(t, 2)})
            if best is None or t < best[0]:
                best = (t, cfg, mode, splits)
        td, fast = dense_us(xq, s_x, w_t, s_w)
        raw.append({"n": n, "k": k, "m": m, "config": "cublaslt_fp8_rowwise", "fast_accum": fast, "us": round(td, 2)})
        row = {"m_max": m, "backend": "sparse", "config": best[1], "mode": best[2], "splits": best[3],
               "us": round(best[0], 2), "dense_us": round(td, 2), "dense_fast_accum": fast,
               "speedup_vs_dense": round(td / best[0], 3)}
        if td < DENSE_MARGIN * best[0]:
            row["backend"] = "dense"
        buckets.append(row)
        logger.info("N=%d K=%d M=%d: best %s/%s/%d %.1f us, cuBLASLt %.1f us (%.2fx)%s", n, k, m, best[1], best[2],
                    best[3], best[0], td, td / best[0], " -> dense" if row["backend"] == "dense" else "")
    return buckets, raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="default: kernels/tuning/<key>_sm90.json for this device (h100, h200)")
    ap.add_argument("--raw", type=Path, default=None, help="also write every measurement here (JSON)")
    ap.add_argument("--shapes", default="all", help="'all' or comma-separated names from bench.shapes "
                    "(llama8b.qkv) or model prefixes (llama8b)")
    ap.add_argument("--ms", default=None, help="comma-separated M values (default 1,2,4,...,8192)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if binding.unavailable_reason() is not None:
        print(f"tune: backend unavailable: {binding.unavailable_reason()}", file=sys.stderr)
        return 1
    shapes = all_shapes()
    if args.shapes != "all":
        sel = args.shapes.split(",")  # names (llama8b.qkv) or whole models (llama8b)
        unknown = [s for s in sel if s not in shapes and not any(k.startswith(s + ".") for k in shapes)]
        if unknown:
            print(f"tune: unknown shapes {unknown}; known: {sorted(shapes)}", file=sys.stderr)
            return 1
        shapes = {k: v for k, v in shapes.items() if k in sel or k.split(".")[0] in sel}
    ms = [int(v) for v in args.ms.split(",")] if args.ms else M_BUCKETS
    if args.out is None:
        name = table_name(*devices.current_name_and_capability())
        if name is None:
            print(f"tune: no table name for {torch.cuda.get_device_name()}; pass --out", file=sys.stderr)
            return 1
        args.out = TUNING_DIR / name
    # time without any previous table steering prepare_weight (no dense copies needed for tuning)
    prov = run_provenance(" ".join(["python -m sparse24.loadtest.kernel_bench.tune", *(argv or sys.argv[1:])]))
    table = {"device": torch.cuda.get_device_name(), "date": prov["created"], "commit": prov["git_commit"],
             "torch": torch.__version__, "library": binding.library_version(), "provenance": prov,
             "note": "m_max buckets; us = best sparse GEMM alone (bf16 out, L2 flushed, median)", "shapes": {}}
    raw_all = []
    seen = set()
    for name, (n, k) in shapes.items():
        if (n, k) in seen:
            continue
        seen.add((n, k))
        logger.info("tuning %s N=%d K=%d", name, n, k)
        buckets, raw = tune_shape(n, k, ms)
        table["shapes"][f"{n},{k}"] = buckets
        raw_all += raw
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=1) + "\n")  # partial results survive a timeout
    if args.raw:
        args.raw.write_text(json.dumps(raw_all) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
