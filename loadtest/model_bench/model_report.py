"""Ratios vs targets, markdown tables and a PNG from a model_bench JSON.

    python -m sparse24.loadtest.model_bench.model_report RESULT.json     # rewrites RESULT.md and RESULT.png
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

# Issue 10's targets (ratios in one run) and the seed blog's averages (Tables 3 and 4, H100, vLLM).
TARGETS = {
    "decode_vs_bf16": (2.0, "single-stream decode latency vs bf16", "1.7x (total latency)"),
    "decode_vs_fp8": (1.35, "single-stream decode latency vs fp8 dense", "~1.3x"),
    "tput32_vs_bf16": (1.6, "batch-32 decode throughput vs bf16", "1.5x (QPS)"),
    "tput32_vs_fp8": (1.25, "batch-32 decode throughput vs fp8 dense", "~1.2x"),
}
COMPONENTS = ("qkv", "o", "gate_up", "down", "lm_head", "other")


def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def result_stem(result: dict) -> str:
    meta = result["meta"]
    gpu = meta.get("gpu", "cpu")
    m = re.search(r"[HhAaBbLl]\d{2,3}", gpu)
    slug = m.group(0).lower() if m else re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    model = "llama8b" if result["model"]["dim"] == 4096 else "tiny"
    fq = "_fusedq" if any(v.endswith("_fq") for v in result.get("weight_gib", {})) else ""
    return f"model_{model}_{slug}_{meta['date_utc'][:10]}{fq}"


def ratios(result: dict) -> dict:
    """Speed-up of sparse_fp8 over bf16 and fp8 (time ratio; >1 means sparse is faster)."""
    out = {"single_stream": {}, "throughput": {}, "targets": {}}
    ss = result.get("single_stream", {})
    for name, per in ss.items():
        if "sparse_fp8" not in per:
            continue
        sp = per["sparse_fp8"]
        out["single_stream"][name] = {
            f"{kind}_vs_{base}": per[base][key] / sp[key]
            for base in ("bf16", "fp8") if base in per
            for kind, key in (("decode", "decode_ms_per_token"), ("prefill", "prefill_ms"), ("total", "total_ms"))}
    for b, per in result.get("throughput", {}).items():
        if "sparse_fp8" in per and "error" not in per:
            out["throughput"][b] = {f"vs_{base}": per["sparse_fp8"]["tokens_per_s"] / per[base]["tokens_per_s"]
                                    for base in ("bf16", "fp8") if base in per}
    fq = {}
    for base in ("bf16", "fp8_fq"):
        dec = [per[base]["decode_ms_per_token"] / per["sparse_fp8_fq"]["decode_ms_per_token"]
               for per in ss.values() if base in per and "sparse_fp8_fq" in per]
        if dec:
            fq[f"decode_vs_{base}"] = _geomean(dec)
        t32 = result.get("throughput", {}).get("32", {})
        if base in t32 and "sparse_fp8_fq" in t32:
            fq[f"tput32_vs_{base}"] = t32["sparse_fp8_fq"]["tokens_per_s"] / t32[base]["tokens_per_s"]
    if fq:
        out["fused_quant"] = fq
    for base in ("bf16", "fp8"):
        vals = [r.get(f"decode_vs_{base}") for r in out["single_stream"].values()]
        tot = [r.get(f"total_vs_{base}") for r in out["single_stream"].values()]
        if any(vals):
            out[f"mean_decode_vs_{base}"] = _geomean(vals)
            out[f"mean_total_vs_{base}"] = _geomean(tot)
            out["targets"][f"decode_vs_{base}"] = out[f"mean_decode_vs_{base}"]
        t32 = out["throughput"].get("32", {}).get(f"vs_{base}")
        if t32:
            out["targets"][f"tput32_vs_{base}"] = t32
    return out


def _quant_ms(bd_batch: dict) -> float | None:
    """Per-step time of the per-token quantization kernels, from the fp8 breakdown (`<kind>.quant`)."""
    gm = bd_batch.get("fp8", {}).get("graph_ms", {})
    q = [v for k, v in gm.items() if k.endswith(".quant")]
    return sum(q) if q else None


def gap_lines(result: dict, r: dict) -> list[str]:
    """For each missed target: how the sparse decode step splits, and what eats the difference."""
    lines = []
    for key, value in r["targets"].items():
        target, what, _ = TARGETS[key]
        if value >= target:
            continue
        base = key.split("_vs_")[1]
        batch = "32" if key.startswith("tput32") else "1"
        bd = result.get("breakdown", {}).get(batch, {})
        if "sparse_fp8" not in bd or base not in bd:
            lines.append(f"- {what}: {value:.2f}x < {target}x; no breakdown at batch {batch}.")
            continue
        sp, bs = bd["sparse_fp8"]["graph_ms"], bd[base]["graph_ms"]
        budget = bd[base]["step_ms"] / target
        shared = sp["lm_head"] + sp["other"]
        lin_s = sum(sp[c] for c in COMPONENTS[:4])
        lin_b = sum(bs[c] for c in COMPONENTS[:4])
        per = ", ".join(f"{c} {bs[c] / sp[c]:.2f}x" for c in COMPONENTS[:4])
        need = lin_b / (budget - shared) if budget > shared else float("inf")
        line = (f"- **{what}: {value:.2f}x < {target}x** (batch {batch}): the sparse step must take <= {budget:.3f} ms, "
                f"it takes {bd['sparse_fp8']['step_ms']:.3f} ms ({bd['sparse_fp8']['step_ms'] - budget:.3f} ms over). "
                f"Its layer linears are {lin_b / lin_s:.2f}x faster than {base}'s ({lin_s:.3f} vs {lin_b:.3f} ms; "
                f"per kind {per}), but the parts every variant shares cost {shared:.3f} ms "
                f"(bf16 LM head {sp['lm_head']:.3f}, attention/norms/RoPE/SiLU/embedding/argmax {sp['other']:.3f}); "
                f"with those fixed the linears would have to be {need:.2f}x faster than {base}'s.")
        q = _quant_ms(bd)
        if q is not None and result.get("fp8_quantizer") == "s24":
            line += (f" Inside our op, the separate per-token activation-quantization kernel (the one the fp8 "
                     f"baseline uses too) costs {q:.3f} ms per step (4 launches per layer); fused into the preceding "
                     f"norm/SiLU/attention epilogue it would bring the step to ~{bd['sparse_fp8']['step_ms'] - q:.3f} ms "
                     f"= {bd[base]['step_ms'] / (bd['sparse_fp8']['step_ms'] - q):.2f}x.")
        if "sparse_fp8_fq" in bd:
            fq_ms = bd["sparse_fp8_fq"]["step_ms"]
            line += f" Measured with it fused (sparse_fp8_fq): {fq_ms:.3f} ms = {bd[base]['step_ms'] / fq_ms:.2f}x."
        lines.append(line)
    return lines


_NOT_KERNELS = ("cuLaunch", "cudaLaunch", "cudaGraph", "cuGraph", "sparse24::", "cudaMemcpy", "cudaStream",
                "sparse_fp8.", "fp8.", "linear.")


def markdown(result: dict) -> str:
    r, meta = ratios(result), result["meta"]
    variants = [v for v in ("bf16", "fp8", "sparse_fp8", "fp8_fq", "sparse_fp8_fq") if v in result.get("weight_gib", {})]
    md = [f"# Model-level benchmark: Llama-3.1-8B-shaped, {' vs '.join(variants)}", "",
          f"GPU {meta.get('gpu')} (driver {meta.get('driver')}, {meta.get('sm_count')} SMs), torch {meta['torch']}, "
          f"CUDA {meta.get('cuda')}, triton {meta.get('triton')}, date {meta['date_utc']}, commit {meta['git_commit']}.",
          f"Command: `{meta['command']}`. Sparse backend: {result.get('sparse_backend')}.",
          f"Linear weights (GiB): {result.get('weight_gib')}; shared embedding + LM head (bf16): "
          f"{result.get('shared_weight_gib')} GiB. Random weights (2:4 magnitude-pruned for sparse_fp8); "
          "CUDA graphs for every timed step; fused Triton norm/RoPE/attention/SiLU/quant kernels shared by all "
          "variants; fp8 = per-token x per-channel `torch._scaled_mm` (use_fast_accum) + fused quant.",
          f"fp8 baseline's activation quantizer: {result.get('fp8_quantizer')}. "
          f"Fused non-GEMM kernels: {result.get('fused_kernels', 'n/a')}. CUDA-graph capture failures: "
          f"{result.get('graph_failures') or 'none'}.", ""]
    if result.get("sparse_dispatch"):
        md += [f"Sparse op's GEMM choice per M (tuning table {result['sparse_dispatch']['tuning_table']}): " +
               "; ".join(f"{k}: " + ", ".join(f"{m} {c}" for m, c in v.items()) if isinstance(v, dict) else f"{k}: {v}"
                         for k, v in result["sparse_dispatch"]["choices"].items()) + ".", ""]
    if result.get("errors"):
        md += ["## Errors in this run", ""] + [f"- {k}: `{str(v).strip().splitlines()[-1][:300]}`"
                                                for k, v in result["errors"].items()] + [""]
    md += ["## Targets (sparse_fp8 speed-up, same run)", "", "| target | measured | goal | seed | met |",
           "|---|---|---|---|---|"]
    for key, (goal, what, seed) in TARGETS.items():
        v = r["targets"].get(key)
        md.append(f"| {what} | {v:.2f}x | >= {goal}x | {seed} | {'yes' if v >= goal else '**no**'} |" if v else
                  f"| {what} | n/a | >= {goal}x | {seed} | n/a |")
    for base in ("bf16", "fp8"):
        if f"mean_total_vs_{base}" in r:
            md.append(f"\nMean (geometric, over use cases) total single-stream latency speed-up vs {base}: "
                      f"{r[f'mean_total_vs_{base}']:.2f}x.")
    if r.get("fused_quant"):
        f = r["fused_quant"]
        fq_errs = {k: v for k, v in result.get("checks", {}).items() if k.startswith("fq_")}
        fq_bad = {k: v for k, v in fq_errs.items() if not v <= 2e-2}
        fq_check = ("Device check of fused vs unfused numbers passed." if fq_errs and not fq_bad else
                    f"**The device check of fused vs unfused logits failed ({fq_bad or 'not run'}): read these as "
                    "timings only** (the kernels do the same work whatever the values).")
        md += ["", "### Experiment: activation quantization fused into RMSNorm / SiLU-and-mul (`*_fq` variants)", "",
               "Same linear modules; the qkv, gate_up and down inputs are quantized by the preceding norm / "
               "activation kernel instead of a separate kernel (o keeps its own). " + fq_check, "",
               "| sparse_fp8_fq speed-up | vs bf16 | vs fp8_fq |", "|---|---|---|",
               f"| single-stream decode (geomean over use cases) | {f.get('decode_vs_bf16', float('nan')):.2f}x | "
               f"{f.get('decode_vs_fp8_fq', float('nan')):.2f}x |",
               f"| batch-32 throughput | {f.get('tput32_vs_bf16', float('nan')):.2f}x | "
               f"{f.get('tput32_vs_fp8_fq', float('nan')):.2f}x |"]
    gaps = gap_lines(result, r)
    if gaps:
        md += ["", "### Where targets are missed", ""] + gaps
    if result.get("single_stream"):
        md += ["", "## (a) Single-stream latency per use case (batch 1)", "",
               "Decode ms/token: method `full` = the whole output generated (greedy, CUDA-graph replays) and "
               "timed; `ends` = mean of the steps timed at the start and at the end of the output "
               f"({result['settings']['decode_chunk']} steps each; step cost is linear in context). "
               "Total = prefill + (output-1) x decode.", "",
               "| use case | prompt/output | variant | prefill ms | decode ms/tok | method | total ms | decode x | total x |",
               "|---|---|---|---|---|---|---|---|---|"]
        for name, per in result["single_stream"].items():
            for v, d in per.items():
                rr = r["single_stream"].get(name, {})
                dx = f"{per['bf16']['decode_ms_per_token'] / d['decode_ms_per_token']:.2f}" if "bf16" in per else ""
                tx = f"{per['bf16']['total_ms'] / d['total_ms']:.2f}" if "bf16" in per else ""
                md.append(f"| {name} | {d['prompt_tokens']}/{d['output_tokens']} | {v} | {d['prefill_ms']:.2f} | "
                          f"{d['decode_ms_per_token']:.3f} | {d.get('decode_method', '')} | {d['total_ms']:.0f} | {dx} | {tx} |")
                del rr
        md.append("\n(x = speed-up vs bf16 of the same use case.) Sparse vs fp8 per use case: " + ", ".join(
            f"{n} decode {x.get('decode_vs_fp8', float('nan')):.2f}x / total {x.get('total_vs_fp8', float('nan')):.2f}x"
            for n, x in r["single_stream"].items()) + ".")
    if result.get("throughput"):
        md += ["", f"## (b) Decode throughput, {result['settings']['context']}-token context", "",
               "| batch | " + " | ".join(f"{v} tok/s" for v in variants) + " | sparse/bf16 | sparse/fp8 |",
               "|---|" + "---|" * (len(variants) + 2)]
        for b, per in result["throughput"].items():
            if "error" in per:
                md.append(f"| {b} | {per['error']} |")
                continue
            rr = r["throughput"].get(b, {})
            md.append(f"| {b} | " + " | ".join(f"{per[v]['tokens_per_s']:.0f}" for v in variants if v in per) +
                      f" | {rr.get('vs_bf16', float('nan')):.2f} | {rr.get('vs_fp8', float('nan')):.2f} |")
    for b, per in result.get("breakdown", {}).items():
        md += ["", f"## (c) Decode step breakdown, batch {b}, context {result['settings']['context']} (ms)", "",
               "Each linear kind timed alone over all layers in a CUDA graph; `other` = full step minus those "
               "(attention, norms, RoPE + cache write, SiLU, embedding, argmax).", "",
               "| variant | step | " + " | ".join(COMPONENTS) + " | extra |", "|---|---|" + "---|" * (len(COMPONENTS) + 1)]
        for v, d in per.items():
            gm = d["graph_ms"]
            extra = ", ".join(f"{k} {x:.3f}" for k, x in gm.items() if "." in k)
            md.append(f"| {v} | {d['step_ms']:.3f} | " + " | ".join(f"{gm[c]:.3f}" for c in COMPONENTS) + f" | {extra} |")
        for v, d in per.items():
            prof = d.get("profiler")
            if not prof:
                continue
            kern = [k for k in prof["top_kernels"] if not k["name"].startswith(_NOT_KERNELS)]
            md += ["", f"torch.profiler, {v}, one eager decode step, top kernels (device us per step, launches): " +
                   "; ".join(f"`{k['name'][:60]}` {k['device_us']:.0f} x{k['calls']:.0f}" for k in kern[:8]) + "."]
        md += ["", "(The JSON also keeps the profiler's per-`record_function` range totals; they over-count "
               "asynchronous kernels (and kernels our op launches through the driver API land in the wrong "
               "range), so the graph-timed table above is the breakdown to read.)"]
    if result.get("checks"):
        md += ["", "## Correctness checks on the device (relative error vs reference)", "",
               ", ".join(f"{k} {v:.1e}" for k, v in result["checks"].items())]
    return "\n".join(md) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"bf16": "#888888", "fp8": "#1f77b4", "sparse_fp8": "#d62728", "fp8_fq": "#17becf",
              "sparse_fp8_fq": "#ff7f0e"}
    present = set(result.get("weight_gib", {})) | {v for p in result.get("single_stream", {}).values() for v in p}
    colors = {v: c for v, c in colors.items() if v in present}
    width = 0.8 / max(len(colors), 1)
    fig, ax = plt.subplots(2, 2, figsize=(14, 9))
    ss = result.get("single_stream", {})
    names = list(ss)
    for j, (key, title) in enumerate((("decode_ms_per_token", "single-stream decode, ms/token"),
                                      ("total_ms", "single-stream total latency, s"))):
        a = ax[0, j]
        for i, v in enumerate(colors):
            vals = [ss[n][v][key] / (1e3 if key == "total_ms" else 1) for n in names if v in ss[n]]
            if len(vals) == len(names):
                a.bar([k + (i - (len(colors) - 1) / 2) * width for k in range(len(names))], vals, width, label=v,
                      color=colors[v])
        a.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
        a.set_title(title)
        a.legend()
    tp = {b: p for b, p in result.get("throughput", {}).items() if "error" not in p}
    a = ax[1, 0]
    for v, c in colors.items():
        pts = [(int(b), p[v]["tokens_per_s"]) for b, p in tp.items() if v in p]
        if pts:
            a.plot(*zip(*pts), marker="o", label=v, color=c)
    a.set_xscale("log", base=2)
    a.set_xlabel("batch")
    a.set_title(f"decode throughput, tokens/s ({result['settings']['context']}-token context)")
    a.legend()
    a = ax[1, 1]
    labels, bottoms = [], []
    for b, per in result.get("breakdown", {}).items():
        for v in per:
            labels.append(f"{v}\nB={b}")
    cmap = plt.get_cmap("tab10")
    bottoms = [0.0] * len(labels)
    for ci, comp in enumerate(COMPONENTS):
        vals = [per[v]["graph_ms"][comp] for b, per in result.get("breakdown", {}).items() for v in per]
        a.bar(range(len(labels)), vals, bottom=bottoms, label=comp, color=cmap(ci))
        bottoms = [x + y for x, y in zip(bottoms, vals)]
    a.set_xticks(range(len(labels)), labels, fontsize=7)
    a.set_title("decode step breakdown, ms")
    a.legend(fontsize=7)
    meta = result["meta"]
    fig.suptitle(f"Llama-3.1-8B-shaped model: bf16 vs fp8 vs 2:4 sparse fp8 - {meta.get('gpu')}, torch {meta['torch']}, "
                 f"{meta['date_utc'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(json_path: str | Path) -> tuple[Path, Path]:
    json_path = Path(json_path)
    result = json.loads(json_path.read_text())
    try:
        result["ratios"] = ratios(result)
    except (KeyError, ZeroDivisionError) as e:
        result["ratios"] = {"error": repr(e), "targets": {}, "single_stream": {}, "throughput": {}}
    json_path.write_text(json.dumps(result, indent=1))
    md, png = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    try:
        md.write_text(markdown(result))
    except (KeyError, ValueError, TypeError, ZeroDivisionError) as e:  # partial results: say so, keep going
        md.write_text(f"# Model-level benchmark (partial)\n\nReport failed: {e!r}\n\n```json\n"
                      f"{json.dumps(result.get('ratios'), indent=1)}\n```\n")
    try:
        plot(result, png)
    except (KeyError, ValueError, TypeError, ZeroDivisionError) as e:  # partial results: keep JSON and markdown
        print(f"model_report: no PNG ({e!r})", file=sys.stderr)
    return md, png


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(*write_report(p))
