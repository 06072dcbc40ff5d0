"""Tables 3 and 4 from the engine results: JSON + markdown + PNG, ratios against both dense baselines.

    python -m sparse24.loadtest.engine_bench.tables_report --dir RESULTS_DIR --name h200_2026-11-30

Reads engine_bf16.json, engine_fp8.json, engine_sparse24.json (run_engine.py) from --dir; writes
<name>.json / .md / .png there. Ratios: latency = baseline seconds / sparse seconds (higher is better for us),
throughput = sparse output tok/s / baseline output tok/s; geometric means over the use cases present in all three.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

VARIANTS = ("bf16", "fp8", "sparse24")
TARGETS = {"latency_vs_bf16": 1.8, "latency_vs_fp8": 1.35, "throughput_vs_bf16": 1.6, "throughput_vs_fp8": 1.25}


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def build(results: dict[str, dict]) -> dict:
    """Pure: per use case latency/throughput of each variant, ratios, geometric means, target verdicts."""
    missing = [v for v in VARIANTS if v not in results]
    if missing:
        raise ValueError(f"missing engine results for {missing}")
    table: dict = {"latency": {}, "throughput": {}}
    ratios: dict[str, list[float]] = {k: [] for k in TARGETS}
    for kind, field, better in (("latency", "median_s", "lower"), ("throughput", "output_tokens_per_s", "higher")):
        cases = [c for c in results["sparse24"].get(kind, {}) if all(c in results[v].get(kind, {}) for v in VARIANTS)]
        for case in cases:
            row = {v: results[v][kind][case][field] for v in VARIANTS}
            row["prompt_tokens"] = results["sparse24"][kind][case]["prompt_tokens"]
            row["output_tokens"] = results["sparse24"][kind][case]["output_tokens"]
            if kind == "throughput":
                row["requests"] = results["sparse24"][kind][case]["requests"]
            for base in ("bf16", "fp8"):
                r = row[base] / row["sparse24"] if better == "lower" else row["sparse24"] / row[base]
                row[f"vs_{base}"] = r
                ratios[f"{kind}_vs_{base}"].append(r)
            table[kind][case] = row
    summary = {k: {"geomean": _geomean(v), "target": TARGETS[k], "met": bool(v) and _geomean(v) >= TARGETS[k],
                   "min": min(v) if v else None, "max": max(v) if v else None} for k, v in ratios.items()}
    meta = results["sparse24"].get("meta", {})
    return {"table3_latency": table["latency"], "table4_throughput": table["throughput"], "summary": summary,
            "meta": meta, "engines": {v: results[v].get("engine") for v in VARIANTS},
            "engine_kwargs": results["sparse24"].get("engine_kwargs"),
            "note": "Llama-3.1-8B-shaped random weights: speed only, no quality signal"}


def render_markdown(rep: dict, title: str) -> str:
    m = rep["meta"]
    lines = [f"# {title}", "",
             f"GPU: {', '.join(m.get('gpus') or ['?'])}; vLLM {m.get('versions', {}).get('vllm')}, torch "
             f"{m.get('versions', {}).get('torch')}; date {m.get('created')}; commit {m.get('git_commit')}.",
             f"Engine arguments (same for all three): `{json.dumps(rep['engine_kwargs'])}`; CUDA graphs and "
             "torch.compile on (vLLM defaults). " + rep["note"] + ".", "",
             "## Table 3: single-stream latency (one request at a time, seconds, median)", "",
             "| use case | prompt/output | bf16 | fp8 | 2:4 sparse fp8 | vs bf16 | vs fp8 |", "|---|---|---|---|---|---|---|"]
    for case, r in rep["table3_latency"].items():
        lines.append(f"| {case} | {r['prompt_tokens']}/{r['output_tokens']} | {r['bf16']:.3f} | {r['fp8']:.3f} | "
                     f"{r['sparse24']:.3f} | {r['vs_bf16']:.2f}x | {r['vs_fp8']:.2f}x |")
    lines += ["", "## Table 4: throughput, all requests at once (output tokens/s)", "",
              "| use case | prompt/output | requests | bf16 | fp8 | 2:4 sparse fp8 | vs bf16 | vs fp8 |",
              "|---|---|---|---|---|---|---|---|"]
    for case, r in rep["table4_throughput"].items():
        lines.append(f"| {case} | {r['prompt_tokens']}/{r['output_tokens']} | {r['requests']} | {r['bf16']:,.0f} | "
                     f"{r['fp8']:,.0f} | {r['sparse24']:,.0f} | {r['vs_bf16']:.2f}x | {r['vs_fp8']:.2f}x |")
    lines += ["", "## Against the targets (geometric mean over the use cases)", "",
              "| ratio | geomean | range | target | met |", "|---|---|---|---|---|"]
    for k, s in rep["summary"].items():
        rng = f"{s['min']:.2f}-{s['max']:.2f}" if s["min"] is not None else "-"
        lines.append(f"| {k.replace('_', ' ')} | {s['geomean']:.2f}x | {rng} | {s['target']}x | "
                     f"{'yes' if s['met'] else 'NO (by ' + format(s['target'] - s['geomean'], '.2f') + ')'} |")
    lines += ["", "Engine load time (s, incl. torch.compile and CUDA graph capture): " +
              ", ".join(f"{v} {(e or {}).get('load_s')}" for v, e in rep["engines"].items()), ""]
    return "\n".join(lines)


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = {"bf16": "#888888", "fp8": "#4c72b0", "sparse24": "#dd8452"}
    labels = {"bf16": "bf16", "fp8": "fp8 dense", "sparse24": "2:4 sparse fp8"}
    for ax, key, ylabel in ((axes[0], "table3_latency", "single-stream latency (s, lower is better)"),
                            (axes[1], "table4_throughput", "output tokens/s, all at once (higher is better)")):
        cases = list(rep[key])
        width = 0.27
        for i, v in enumerate(("bf16", "fp8", "sparse24")):
            ax.bar([j + (i - 1) * width for j in range(len(cases))], [rep[key][c][v] for c in cases], width,
                   label=labels[v], color=colors[v])
        for j, c in enumerate(cases):
            ax.annotate(f"{rep[key][c]['vs_bf16']:.2f}x", (j + width, rep[key][c]["sparse24"]), ha="center",
                        va="bottom", fontsize=8)
        ax.set_xticks(range(len(cases)), [c.replace("_", "\n") for c in cases], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    gpu = ", ".join(rep["meta"].get("gpus") or ["?"])
    fig.suptitle(f"vLLM {rep['meta'].get('versions', {}).get('vllm')} on {gpu}: Llama-3.1-8B shape "
                 f"(labels: sparse vs bf16)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--name", required=True, help="output file stem")
    p.add_argument("--title", default="Seed Tables 3 and 4 through vLLM")
    args = p.parse_args(argv)
    d = Path(args.dir)
    results = {}
    for v in VARIANTS:
        f = d / f"engine_{v}.json"
        if not f.is_file():
            print(f"tables_report: error: {f} is missing", file=sys.stderr)
            return 2
        results[v] = json.loads(f.read_text())
    rep = build(results)
    (d / f"{args.name}.json").write_text(json.dumps(rep, indent=1))
    (d / f"{args.name}.md").write_text(render_markdown(rep, args.title))
    plot(rep, d / f"{args.name}.png")
    print(render_markdown(rep, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
