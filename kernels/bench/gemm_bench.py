"""Kernel benchmark: our 2:4-sparse FP8 GEMM vs bf16 torch.mm, cuBLASLt FP8 and cuSPARSELt, one run.

    python -m sparse24.kernels.bench.gemm_bench [--out kernels/bench/results] [--quick]
    python -m sparse24.kernels.bench.gemm_bench --plot RESULT.json      # PNG + markdown from a JSON (no GPU)

(a) the seed's Fig 3: weight 4096x28672 (N=28672, K=4096), M = 1, 2, 4, ..., 8192;
(b) Llama-3.1-8B and -70B linear shapes at M = 1, 16, 64, 128, 512, 2048, 8192.
Per point (median us, L2 flushed, CUDA events): bf16 `torch.mm`; cuBLASLt fp8 `torch._scaled_mm` row-wise
(GEMM alone, best of use_fast_accum on/off); ours sparse GEMM alone (the dispatched choice, and the best
pure-sparse config of the tuning table); ours quant+GEMM (the whole `sparse24::sparse_fp8_linear` op) vs our
quantizer + cuBLASLt; cuSPARSELt (`torch._cslt_sparse_mm`) on a few Fig 3 points where it runs.
Writes <device>_<date>.json and .md (and .png where matplotlib is installed) under --out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from .. import ops
from ..linear import pack_sparse_fp8_weight
from ..tuning.table import MODES, Choice, load_table
from .shapes import FIG3, FIG3_MS, LLAMA_3_1_8B, LLAMA_3_1_70B, random_24_fp8
from .timing import bench_us

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parent / "results"
MODEL_MS = [1, 16, 64, 128, 512, 2048, 8192]
CSLT_MS = [16, 128, 1024, 4096]
HBM_TBS = 3.35  # H100 SXM datasheet
FP8_DENSE_TFLOPS = 1979.0  # H100 SXM datasheet, dense fp8 (sparse: 2x)


def environment() -> dict:
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "library": ops.library_version(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "sm_count": torch.cuda.get_device_properties(0).multi_processor_count}
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                        "--format=csv,noheader"], capture_output=True, text=True,
                                       timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        env["driver"] = "unknown"
    m = re.search(r"cutlass=(\S+)", env["library"])
    env["cutlass"] = m.group(1) if m else "unknown"
    return env


def cslt_setup(w: torch.Tensor):
    try:
        comp = torch._cslt_compress(w)
        return comp
    except Exception as e:  # noqa: BLE001 - baseline only where it runs
        logger.info("cuSPARSELt unavailable: %s", e)
        return None


def measure_shape(label: str, n: int, k: int, ms: list[int], cslt_ms: list[int]) -> list[dict]:
    w, s_w = random_24_fp8(n, k, seed=n * 7 + k)
    packed = pack_sparse_fp8_weight(w, s_w)
    st = packed.gpu_state
    w_bf16 = (w.float() * s_w).to(torch.bfloat16)
    w_t = w.t()
    table = load_table(os.environ.get("SPARSE24_TUNING_TABLE"))  # the table ops' dispatcher uses
    cslt = cslt_setup(w) if cslt_ms else None
    rows = []
    for m in ms:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        xq, s_x = ops.quantize_per_token(x)
        r = {"shape": label, "n": n, "k": k, "m": m}
        r["bf16_us"] = bench_us(lambda: torch.mm(x, w_bf16.t()))
        d = {}
        for fast in (False, True):
            d[fast] = bench_us(lambda: torch._scaled_mm(xq, w_t, scale_a=s_x, scale_b=s_w.reshape(1, -1),
                                                        out_dtype=torch.bfloat16, use_fast_accum=fast))
        r["fp8_us"], r["fp8_fast_accum_us"] = d[False], d[True]
        r["fp8_best_us"] = min(d.values())
        choice = table.lookup(m, n, k)
        r["dispatch"] = f"{choice.backend}:{choice.config}/{choice.mode}/{choice.splits}"
        # the table keeps the best pure-sparse config in dense rows too: time it as "sparse kernel alone"
        sparse_choice = Choice("sparse", choice.config, choice.mode, choice.splits)
        cid = ops.config_names()[sparse_choice.config]
        r["sparse_config"] = f"{sparse_choice.config}/{sparse_choice.mode}/{sparse_choice.splits}"
        r["sparse_us"] = bench_us(lambda: ops.sparse_gemm(xq, s_x, st.a_values, st.e_meta, st.s_w, None,
                                                          torch.bfloat16, cid, MODES[sparse_choice.mode],
                                                          sparse_choice.splits))
        r["dispatched_us"] = r["fp8_best_us"] if choice.backend == "dense" else r["sparse_us"]
        r["quant_us"] = bench_us(lambda: ops.quantize_per_token(x))
        r["sparse_linear_us"] = bench_us(lambda: ops.sparse_fp8_linear_op(x, st.a_values, st.e_meta, st.s_w, None,
                                                                          st.dense_t, torch.bfloat16))

        def dense_linear():
            q, s = ops.quantize_per_token(x)
            return torch._scaled_mm(q, w_t, scale_a=s, scale_b=s_w.reshape(1, -1), out_dtype=torch.bfloat16,
                                    use_fast_accum=True)

        r["fp8_linear_us"] = bench_us(dense_linear)
        # eager (no CUDA graph): what a caller pays per call including host overhead
        r["sparse_linear_eager_us"] = bench_us(lambda: ops.sparse_fp8_linear(x, packed, None, torch.bfloat16),
                                               graph=False)
        if cslt is not None and m in cslt_ms:
            try:
                r["cusparselt_us"] = bench_us(lambda: torch._cslt_sparse_mm(cslt, xq.t(), out_dtype=torch.bfloat16),
                                              graph=False)
            except Exception as e:  # noqa: BLE001
                logger.info("cuSPARSELt failed at M=%d: %s", m, e)
                cslt = None
        # derived numbers
        sp_bytes = n * k // 2 + n * k // 8 + m * k + 2 * m * n
        r["sparse_tbs"] = round(sp_bytes / (r["sparse_us"] * 1e-6) / 1e12, 3)
        r["sparse_dense_equiv_tflops"] = round(2 * m * n * k / (r["sparse_us"] * 1e-6) / 1e12, 1)
        r["fp8_tbs"] = round((n * k + m * k + 2 * m * n) / (r["fp8_best_us"] * 1e-6) / 1e12, 3)
        r["sparse_hbm_util"] = round(r["sparse_tbs"] / HBM_TBS, 3)
        r["sparse_tc_util"] = round(r["sparse_dense_equiv_tflops"] / (2 * FP8_DENSE_TFLOPS), 3)
        r["speedup_vs_fp8"] = round(r["fp8_best_us"] / r["dispatched_us"], 3)
        r["sparse_kernel_vs_fp8"] = round(r["fp8_best_us"] / r["sparse_us"], 3)
        r["speedup_vs_bf16"] = round(r["bf16_us"] / r["dispatched_us"], 3)
        r["linear_vs_fp8_linear"] = round(r["fp8_linear_us"] / r["sparse_linear_us"], 3)
        r["linear_vs_bf16"] = round(r["bf16_us"] / r["sparse_linear_us"], 3)
        for key in list(r):
            if key.endswith("_us"):
                r[key] = round(r[key], 2)
        logger.info("%s M=%d: sparse %.1f (%s) fp8 %.1f bf16 %.1f -> %.2fx fp8, %.2fx bf16; linear %.1f vs %.1f",
                    label, m, r["sparse_us"], r["dispatch"], r["fp8_best_us"], r["bf16_us"], r["speedup_vs_fp8"],
                    r["speedup_vs_bf16"], r["sparse_linear_us"], r["fp8_linear_us"])
        rows.append(r)
    del packed, w_bf16, w, cslt
    torch.cuda.empty_cache()
    return rows


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"# Sparse-FP8 GEMM benchmark — {env['gpu']}, {env['date']}", "",
             f"torch {env['torch']} (CUDA {env['cuda']}), driver/clock/power {env['driver']}, "
             f"CUTLASS {env['cutlass']}, library `{env['library']}`.", "",
             "Median µs, L2 flushed. `fp8` = cuBLASLt `torch._scaled_mm` row-wise, best of use_fast_accum on/off "
             "(GEMM alone, pre-quantized X). `ours` = dispatched kernel (GEMM alone). `×fp8`, `×bf16` = speedups of "
             "ours. `lin ours/fp8` = whole op incl. per-token quantization: ours vs our quantizer + cuBLASLt. "
             "TB/s = bytes the sparse kernel must move / time (HBM 3.35 TB/s datasheet).", ""]
    hdr = ("| shape | M | bf16 | fp8 | ours | dispatch | ×fp8 | ×bf16 | TB/s | TFLOP/s | lin ours | lin fp8 | "
           "cuSPARSELt |")
    lines += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    for r in result["rows"]:
        lines.append(f"| {r['shape']} | {r['m']} | {r['bf16_us']} | {r['fp8_best_us']} | {r['dispatched_us']} | "
                     f"{r['dispatch']} | {r['speedup_vs_fp8']:.2f} | {r['speedup_vs_bf16']:.2f} | "
                     f"{r['sparse_tbs']:.2f} | {r['sparse_dense_equiv_tflops']} | {r['sparse_linear_us']} | "
                     f"{r['fp8_linear_us']} | {r.get('cusparselt_us', '')} |")
    lines += ["", "## Targets (issue 4)", ""]
    fig = [r for r in result["rows"] if r["shape"] == "fig3"]
    if fig:
        worst = min(r["speedup_vs_fp8"] for r in fig)
        small = min((r["speedup_vs_fp8"] for r in fig if r["m"] <= 64), default=float("nan"))
        large = min((r["speedup_vs_fp8"] for r in fig if r["m"] >= 2048), default=float("nan"))
        bf = min((r["speedup_vs_bf16"] for r in fig if r["m"] >= 2048), default=float("nan"))
        allmin = min(r["speedup_vs_fp8"] for r in result["rows"])
        lines += [f"- Fig 3 shape, every M: min ×fp8 = {worst:.2f} (target ≥ 1.3)",
                  f"- Fig 3 shape, M ≤ 64: min ×fp8 = {small:.2f} (target ≥ 1.6)",
                  f"- Fig 3 shape, M ≥ 2048: min ×fp8 = {large:.2f} (target ≥ 1.6)",
                  f"- Fig 3 shape, M ≥ 2048: min ×bf16 = {bf:.2f} (target ≥ 2.8)",
                  f"- every shape and M: min ×fp8 = {allmin:.2f} (target ≥ 1.0, dispatch)"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib not installed: no PNG (run --plot on the JSON elsewhere)")
        return False
    fig = [r for r in result["rows"] if r["shape"] == "fig3"]
    ms = [r["m"] for r in fig]
    f, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, lab in (("bf16_us", "BF16 torch.mm"), ("fp8_best_us", "FP8 cuBLASLt row-wise"),
                     ("dispatched_us", "2:4 sparse FP8 (ours)")):
        a1.plot(ms, [r[key] for r in fig], marker="o", label=lab)
    a1.set(xscale="log", yscale="log", xlabel="M (tokens)", ylabel="µs (median)",
           title=f"GEMM latency, weight {FIG3[1]}×{FIG3[0]}")
    a1.set_xscale("log", base=2)
    a1.legend()
    a2.plot(ms, [r["bf16_us"] / r["fp8_best_us"] for r in fig], marker="o", label="FP8 dense vs BF16")
    a2.plot(ms, [r["speedup_vs_bf16"] for r in fig], marker="o", label="2:4 sparse FP8 vs BF16")
    a2.plot(ms, [r["speedup_vs_fp8"] for r in fig], marker="s", label="2:4 sparse FP8 vs FP8 dense")
    a2.axhline(1.0, color="gray", lw=0.8)
    a2.set_xscale("log", base=2)
    a2.set(xlabel="M (tokens)", ylabel="speedup", title=f"Fig 3 reproduction — {result['environment']['gpu']}")
    a2.legend()
    f.tight_layout()
    f.savefig(path, dpi=110)
    return True


def write_outputs(result: dict, out: Path) -> Path:
    env = result["environment"]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", env["gpu"]).strip("_").lower()
    stem = out / f"{slug}_{env['date'][:10]}"
    out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    plot(result, stem.with_suffix(".png"))
    return stem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--quick", action="store_true", help="Fig 3 shape only")
    ap.add_argument("--plot", type=Path, default=None, help="re-render .md/.png from a result JSON and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.plot:
        result = json.loads(args.plot.read_text())
        print(write_outputs(result, args.plot.parent))
        return 0
    if not ops.gpu_backend_available():
        print(f"bench: backend unavailable: {ops.unavailable_reason()}", file=sys.stderr)
        return 1
    env = environment()
    rows = measure_shape("fig3", *FIG3, FIG3_MS, CSLT_MS)
    stem = write_outputs({"environment": env, "rows": rows}, args.out)  # partial results survive a timeout
    if not args.quick:
        for pre, shapes in (("llama8b", LLAMA_3_1_8B), ("llama70b", LLAMA_3_1_70B)):
            for name, (n, k) in shapes.items():
                if (n, k) == FIG3 and pre == "llama8b":
                    rows += [dict(r, shape=f"{pre}.{name}") for r in rows if r["shape"] == "fig3" and r["m"] in MODEL_MS]
                    continue
                rows += measure_shape(f"{pre}.{name}", n, k, MODEL_MS, [])
                stem = write_outputs({"environment": env, "rows": rows}, args.out)
    result = {"environment": env, "rows": rows}
    print(markdown(result))
    print(f"wrote {stem}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
