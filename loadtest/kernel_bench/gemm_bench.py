"""Kernel benchmark: our 2:4-sparse FP8 GEMM vs every dense FP8 peer and cuSPARSELt, one run (issue 17).

    python -m sparse24.loadtest.kernel_bench.gemm_bench [--out DIR] [--shapes llama8b,fig3] [--ms 1,16,...] [--quick]
    python -m sparse24.loadtest.kernel_bench.gemm_bench --plot RESULT.json      # .md + .png from a JSON (no GPU)

Default: the Llama-3.1-8B linears (qkv, o, gate_up, down) and the seed's Fig 3 weight (28672x4096, the same
as gate_up: its rows are copied, not re-measured), M = 1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192.
Per (shape, M), median µs of CUDA-graph replays with L2 flushed (timing.bench_us): bf16 torch.mm; cuBLASLt
fp8 row-wise (torch._scaled_mm, fast accum off and on); vLLM's CUTLASS cutlass_scaled_mm; ours (the
dispatched choice and the sparse kernel alone); cuSPARSELt with a cached plan; whole ops (per-token quant +
GEMM): ours, vLLM's, our quantizer + cuBLASLt. Peers that cannot run here are skipped with the reason
(peers.py). Ratios and issue-17 targets: report.py. Writes <device>_<date>.json/.md/.png under --out.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ...kernels import binding, devices, ops
from ...kernels.settings import settings
from ...kernels.linear import pack_sparse_fp8_weight
from ...kernels.tuning.table import MODES, Choice, default_choice, load_table, table_for_device
from ...serve_app.provenance import results_stem, run_provenance
from . import peers, report
from .shapes import FIG3, LLAMA_3_1_8B, LLAMA_3_1_70B, random_24_fp8
from .timing import bench_us

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parents[1] / "results" / "kernels"
BENCH_MS = [1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
QUICK_MS = [1, 64, 1024, 8192]
MODELS = {"llama8b": LLAMA_3_1_8B, "llama70b": LLAMA_3_1_70B}


def environment() -> dict:
    name, cap = devices.current_name_and_capability()
    peaks, known = devices.lookup_or_default(name, cap)
    prov = run_provenance(" ".join(["python -m sparse24.loadtest.kernel_bench.gemm_bench", *sys.argv[1:]]))
    env = {"gpu": name, "capability": list(cap) if cap else None, "torch": torch.__version__,
           "cuda": torch.version.cuda, "library": binding.library_version(), "python": prov["python"],
           "host": prov["hostname"], "date": prov["created"],
           "sm_count": torch.cuda.get_device_properties(0).multi_processor_count,
           "commit": prov["git_commit"] or "unknown", "command": prov["command"], "provenance": prov,
           "peaks": dict(asdict(peaks), known=known),
           "tuning_table": settings().tuning_table or str(table_for_device(name, cap).name)}
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                        "--format=csv,noheader"], capture_output=True, text=True,
                                       timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        env["driver"] = "unknown"
    m = re.search(r"cutlass=(\S+)", env["library"])
    env["cutlass"] = m.group(1) if m else "unknown"
    return env


def measure_shape(label: str, n: int, k: int, ms: list[int], vllm_ops, skipped: dict) -> list[dict]:
    """Every column at every M for one weight shape (rows of report.py's keys)."""
    w, s_w = random_24_fp8(n, k, seed=n * 7 + k)
    packed = pack_sparse_fp8_weight(w, s_w)
    st = packed.gpu_state
    w_bf16 = (w.float() * s_w).to(torch.bfloat16)
    w_t = w.t()  # [K, N] column-major: what torch._scaled_mm and vLLM's cutlass_scaled_mm want
    s_w_row, s_w_col = s_w.reshape(1, -1), s_w.reshape(-1, 1).contiguous()
    table = load_table(settings().tuning_table)  # the table ops' dispatcher uses
    cslt, why = peers.load_cusparselt(w, s_w)
    if cslt is None:
        skipped.setdefault("cuSPARSELt", why)
    rows = []
    for m in ms:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        xq, s_x = ops.quantize_per_token(x)
        r = {"shape": label, "n": n, "k": k, "m": m}
        r["bf16_us"] = bench_us(lambda: torch.mm(x, w_bf16.t()))
        for key, fast in (("fp8_us", False), ("fp8_fast_accum_us", True)):
            r[key] = bench_us(lambda: torch._scaled_mm(xq, w_t, scale_a=s_x, scale_b=s_w_row,
                                                       out_dtype=torch.bfloat16, use_fast_accum=fast))
        r["fp8_best_us"] = min(r["fp8_us"], r["fp8_fast_accum_us"])
        choice = table.lookup(m, n, k)
        r["dispatch"] = f"{choice.backend}:{choice.config}/{choice.mode}/{choice.splits}"
        # the table keeps the best pure-sparse config in dense rows too: time it as "sparse kernel alone"
        sc = Choice("sparse", choice.config, choice.mode, choice.splits)
        if sc.config not in binding.config_names():  # a partial build: the untuned rule, else any compiled config
            sc = default_choice(m)
            if sc.config not in binding.config_names():
                sc = Choice(config=sorted(binding.config_names())[0])
        cid = binding.config_names()[sc.config]
        r["sparse_config"] = f"{sc.config}/{sc.mode}/{sc.splits}"

        def ours():
            return ops.sparse_gemm(xq, s_x, st.a_values, st.e_meta, st.s_w, None, torch.bfloat16, cid,
                                   MODES[sc.mode], sc.splits)

        ref = ours()
        r["sparse_us"] = bench_us(ours)
        r["dispatched_us"] = r["fp8_best_us"] if choice.backend == "dense" else r["sparse_us"]
        r["quant_us"] = bench_us(lambda: ops.quantize_per_token(x))
        r["sparse_linear_us"] = bench_us(lambda: ops.sparse_fp8_linear_op(x, st.a_values, st.e_meta, st.s_w, None,
                                                                          st.dense_t, torch.bfloat16))

        def dense_linear():
            q, s = ops.quantize_per_token(x)
            return torch._scaled_mm(q, w_t, scale_a=s, scale_b=s_w_row, out_dtype=torch.bfloat16,
                                    use_fast_accum=True)

        r["fp8_linear_us"] = bench_us(dense_linear)
        # eager (no CUDA graph): what a caller pays per call including host overhead
        r["sparse_linear_eager_us"] = bench_us(lambda: ops.sparse_fp8_linear(x, packed, None, torch.bfloat16),
                                               graph=False)
        if vllm_ops is not None:
            r.update(peers.measure_vllm(vllm_ops, x, xq, s_x, w_t, s_w_col, ref))
        if cslt is not None:
            r.update(cslt.measure(xq, s_x, ref))
        for key in list(r):
            if key.endswith("_us") and isinstance(r[key], float):
                r[key] = round(r[key], 2)
        d = report.derive(r)
        logger.info("%s M=%d: ours %.1f (%s) fastest dense %s %s -> x%s; vLLM whole %s vs ours %.1f; cuSPARSELt %s%s",
                    label, m, r["dispatched_us"], r["dispatch"], d["fastest_dense"], d["fastest_dense_us"],
                    d["x_dense"], r.get("vllm_linear_us"), r["sparse_linear_us"], r.get("cslt_cached_us"),
                    f" ({r['cslt_error']})" if "cslt_error" in r else "")
        rows.append(r)
    del packed, w_bf16, w, cslt
    torch.cuda.empty_cache()
    return rows


def plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib not installed: no PNG (run --plot on the JSON elsewhere)")
        return False
    rows = report.enrich([r for r in result["rows"] if r["shape"] == "fig3"], result["environment"].get("peaks"))
    if not rows:
        return False
    ms = [r["m"] for r in rows]
    f, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for key, lab in (("bf16_us", "BF16 torch.mm"), ("fp8_best_us", "FP8 cuBLASLt row-wise (best accum)"),
                     ("vllm_cutlass_us", "FP8 vLLM CUTLASS"), ("cslt_cached_us", "2:4 FP8 cuSPARSELt (cached plan)"),
                     ("dispatched_us", "2:4 FP8 ours")):
        pts = [(m, r[key]) for m, r in zip(ms, rows) if r.get(key)]
        if pts:
            a1.plot(*zip(*pts), marker="o", label=lab)
    a1.set(yscale="log", xlabel="M (tokens)", ylabel="µs (median)", title=f"GEMM latency, weight {FIG3[0]}×{FIG3[1]}")
    a1.set_xscale("log", base=2)
    a1.legend(fontsize=8)
    for key, lab in (("x_dense", "ours vs fastest dense FP8"), ("x_cublaslt", "ours vs cuBLASLt FP8"),
                     ("x_cslt", "ours vs cuSPARSELt cached"), ("x_vllm_linear", "whole op: ours vs vLLM")):
        pts = [(m, r[key]) for m, r in zip(ms, rows) if r.get(key)]
        if pts:
            a2.plot(*zip(*pts), marker="o", label=lab)
    for t in report.TARGETS:
        if t.metric == "x_dense" and t.minimum > 1.0:
            lo, hi = max(t.m_min, ms[0]), min(t.m_max, ms[-1])
            a2.hlines(t.minimum, lo, hi, colors="gray", linestyles="dashed", lw=0.8)
    a2.axhline(1.0, color="gray", lw=0.8)
    a2.set_xscale("log", base=2)
    a2.set(xlabel="M (tokens)", ylabel="speedup (dashed: issue-17 targets)",
           title=f"Fig 3 — {result['environment'].get('gpu')}")
    a2.legend(fontsize=8)
    f.tight_layout()
    f.savefig(path, dpi=110)
    return True


def write_outputs(result: dict, out: Path) -> Path:
    env = result["environment"]
    stem = out / results_stem(env["gpu"] or "cpu", env["date"])
    out.mkdir(parents=True, exist_ok=True)
    rows = report.enrich(result["rows"], env.get("peaks"))
    stem.with_suffix(".json").write_text(json.dumps(dict(result, rows=rows, summary=report.summary(rows)),
                                                    indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(report.markdown(result))
    plot(result, stem.with_suffix(".png"))
    return stem


def shape_list(spec: str) -> list[tuple[str, int, int]]:
    """'llama8b,fig3' -> [(label, N, K)]; fig3 last (its rows are copied from llama8b.gate_up when measured)."""
    out = []
    for part in spec.split(","):
        if part in MODELS:
            out += [(f"{part}.{n}", *nk) for n, nk in MODELS[part].items()]
        elif part == "fig3":
            continue
        elif part.split(".")[0] in MODELS and part.split(".", 1)[1] in MODELS[part.split(".")[0]]:
            out.append((part, *MODELS[part.split(".")[0]][part.split(".", 1)[1]]))
        else:
            raise ValueError(f"unknown shape {part!r}: use llama8b, llama70b, fig3 or e.g. llama8b.qkv")
    if "fig3" in spec.split(","):
        out.append(("fig3", *FIG3))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--shapes", default="llama8b,fig3", help="llama8b, llama70b, fig3 or names like llama8b.qkv")
    ap.add_argument("--ms", default=None, help=f"comma-separated M (default {','.join(map(str, BENCH_MS))})")
    ap.add_argument("--quick", action="store_true", help=f"Fig 3 shape only, M = {QUICK_MS}")
    ap.add_argument("--plot", type=Path, default=None, help="re-render .md/.png from a result JSON and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.plot:
        result = json.loads(args.plot.read_text())
        print(write_outputs(result, args.plot.parent))
        return 0
    if binding.unavailable_reason() is not None:
        print(f"bench: backend unavailable: {binding.unavailable_reason()}", file=sys.stderr)
        return 1
    shapes = shape_list("fig3" if args.quick else args.shapes)
    ms = [int(v) for v in args.ms.split(",")] if args.ms else (QUICK_MS if args.quick else BENCH_MS)
    env = environment()
    skipped: dict[str, str] = {}
    vllm_ops, why = peers.load_vllm_ops()
    env["vllm"] = vllm_ops.source if vllm_ops else "skipped"
    if why:
        skipped["vLLM"] = why
    env["cusparselt"] = peers.cusparselt_version() or "skipped"
    env["skipped"] = skipped
    logger.info("peers: vLLM %s; cuSPARSELt %s; skipped %s", env["vllm"], env["cusparselt"], skipped)
    rows: list[dict] = []
    stem = None
    for label, n, k in shapes:
        if label == "fig3" and any((r["n"], r["k"]) == FIG3 for r in rows):
            rows += [dict(r, shape="fig3") for r in rows if (r["n"], r["k"]) == FIG3 and r["shape"] != "fig3"]
        else:
            rows += measure_shape(label, n, k, ms, vllm_ops, skipped)
        stem = write_outputs({"environment": env, "rows": rows}, args.out)  # partial results survive a timeout
    print(report.markdown({"environment": env, "rows": rows}))
    print(f"wrote {stem}.json/.md/.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
