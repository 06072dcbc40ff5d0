"""Pure logic of the GEMM benchmark report (issue 17): ratios, target checks, table rows, markdown. No GPU.

A measured row (gemm_bench.measure_shape) holds median µs per column; absent or None = not measured (a peer
that skipped). Columns (GEMM alone on pre-quantized X unless "linear"):

    bf16_us             torch.mm bf16
    fp8_us              cuBLASLt fp8 row-wise (torch._scaled_mm, use_fast_accum=False)
    fp8_fast_accum_us   the same with use_fast_accum=True
    vllm_cutlass_us     vLLM's CUTLASS cutlass_scaled_mm (per-token x per-channel), what vLLM FP8 users run
    sparse_us           our 2:4 kernel alone; dispatched_us: what our dispatcher runs (sparse or cuBLASLt)
    cslt_cached_us      cuSPARSELt with a cached plan (per-channel alpha in-kernel + per-token rescale kernel)
    cslt_gemm_us        the same without the per-token rescale (cuSPARSELt's lower bound; not the same output)
    sparse_linear_us    our whole op: per-token quantization + dispatched GEMM (sparse24::sparse_fp8_linear)
    vllm_linear_us      vLLM's whole op: scaled_fp8_quant(use_per_token_if_dynamic=True) + cutlass_scaled_mm
    fp8_linear_us       our quantizer + cuBLASLt fp8

`derive` adds the ratios; `check` the pass/miss of each target; `markdown` renders a result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# The dense FP8 baselines a user could run instead of us; the fastest of those measured is the reference.
DENSE_BASELINES = {"fp8_us": "cuBLASLt", "fp8_fast_accum_us": "cuBLASLt-fast", "vllm_cutlass_us": "vLLM-CUTLASS"}
DEFAULT_PEAKS = {"label": "H100 SXM5 80GB HBM3 (assumed)", "hbm_tbs": 3.35, "fp8_dense_tflops": 1979.0}


@dataclass(frozen=True)
class Target:
    """`metric` >= `minimum` for rows with m_min <= M <= m_max (issue 17's targets)."""

    name: str
    metric: str
    minimum: float
    m_min: int = 0
    m_max: int = 1 << 62

    def applies(self, m: int) -> bool:
        return self.m_min <= m <= self.m_max


TARGETS = [
    Target("dense M<=64", "x_dense", 1.45, m_max=64),
    Target("dense 128-1024", "x_dense", 1.25, m_min=128, m_max=1024),
    Target("dense M>=2048", "x_dense", 1.5, m_min=2048),
    Target("dense never<1", "x_dense", 1.0),
    Target("whole-op vs vLLM M<=64", "x_vllm_linear", 1.4, m_max=64),
    Target("vs cuSPARSELt", "x_cslt", 1.0),
]


def _t(row: dict, key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and v > 0 and math.isfinite(v) else None


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den is not None else None


def fastest_dense(row: dict) -> tuple[str | None, float | None]:
    """(name, µs) of the fastest dense FP8 GEMM measured in this row."""
    best = (None, None)
    for key, name in DENSE_BASELINES.items():
        t = _t(row, key)
        if t is not None and (best[1] is None or t < best[1]):
            best = (name, t)
    return best


def sparse_bytes(n: int, k: int, m: int) -> int:
    """Bytes our kernel must move: 2:4 values (N*K/2) + metadata (N*K/8) + fp8 X + bf16 Y."""
    return n * k // 2 + n * k // 8 + m * k + 2 * m * n


def derive(row: dict, peaks: dict | None = None) -> dict:
    """Ratios and utilisations of one measured row (new keys only; the row is not changed).

    x_dense: fastest dense FP8 / what our dispatcher runs (the user-facing ratio the targets use);
    x_dense_kernel: the same for our sparse kernel alone; x_vllm_linear: vLLM's whole op / ours;
    x_cslt: cuSPARSELt cached (same output) / our sparse kernel; x_cslt_gemm: vs cuSPARSELt without the
    per-token rescale; TB/s and TFLOP/s of our kernel and their fraction of the device's datasheet peaks."""
    peaks = peaks or DEFAULT_PEAKS
    n, k, m = row["n"], row["k"], row["m"]
    name, dense = fastest_dense(row)
    ours = _t(row, "sparse_us")
    disp = _t(row, "dispatched_us") or ours
    out = {"fastest_dense": name, "fastest_dense_us": dense,
           "x_dense": _ratio(dense, disp), "x_dense_kernel": _ratio(dense, ours),
           "x_cublaslt": _ratio(min(filter(None, (_t(row, "fp8_us"), _t(row, "fp8_fast_accum_us"))), default=None),
                                disp),
           "x_vllm_cutlass": _ratio(_t(row, "vllm_cutlass_us"), disp),
           "x_bf16": _ratio(_t(row, "bf16_us"), disp),
           "x_vllm_linear": _ratio(_t(row, "vllm_linear_us"), _t(row, "sparse_linear_us")),
           "x_fp8_linear": _ratio(_t(row, "fp8_linear_us"), _t(row, "sparse_linear_us")),
           "x_cslt": _ratio(_t(row, "cslt_cached_us"), ours),
           "x_cslt_gemm": _ratio(_t(row, "cslt_gemm_us"), ours)}
    if ours is not None:
        tbs = sparse_bytes(n, k, m) / (ours * 1e-6) / 1e12
        tflops = 2 * m * n * k / (ours * 1e-6) / 1e12  # dense-equivalent
        out.update(sparse_tbs=round(tbs, 3), sparse_hbm_util=round(tbs / peaks["hbm_tbs"], 3),
                   sparse_dense_equiv_tflops=round(tflops, 1),
                   sparse_tc_util=round(tflops / (2 * peaks["fp8_dense_tflops"]), 3))
    if dense is not None:
        out["dense_tbs"] = round((n * k + m * k + 2 * m * n) / (dense * 1e-6) / 1e12, 3)
        out["dense_hbm_util"] = round(out["dense_tbs"] / peaks["hbm_tbs"], 3)
    return out


def check(row: dict, targets: list[Target] = TARGETS) -> dict[str, str]:
    """{target name: 'pass' | 'miss' | 'skip' (peer not measured)} for the targets that apply at this M.
    `row` must hold derive()'s keys."""
    out = {}
    for t in targets:
        if not t.applies(row["m"]):
            continue
        v = row.get(t.metric)
        out[t.name] = "skip" if v is None else ("pass" if v >= t.minimum else "miss")
    return out


def summary(rows: list[dict], targets: list[Target] = TARGETS) -> list[dict]:
    """Per target: rows that pass / miss / skip and the worst value (with its shape and M)."""
    res = []
    for t in targets:
        app = [r for r in rows if t.applies(r["m"])]
        vals = [r for r in app if r.get(t.metric) is not None]
        worst = min(vals, key=lambda r: r[t.metric]) if vals else None
        res.append({"target": t.name, "metric": t.metric, "minimum": t.minimum,
                    "pass": sum(r[t.metric] >= t.minimum for r in vals),
                    "miss": sum(r[t.metric] < t.minimum for r in vals), "skip": len(app) - len(vals),
                    "worst": worst[t.metric] if worst else None,
                    "worst_at": f"{worst['shape']} M={worst['m']}" if worst else None})
    return res


def enrich(rows: list[dict], peaks: dict | None = None) -> list[dict]:
    """Rows with derive()'s keys and a 'targets' dict added (copies)."""
    out = []
    for r in rows:
        d = dict(r)
        d.update(derive(r, peaks))
        d["targets"] = check(d)
        out.append(d)
    return out


def _f(v, fmt: str = "{:.1f}") -> str:
    return "—" if v is None else fmt.format(v)


def _x(row: dict, metric: str, names: list[str]) -> str:
    """Ratio with the worst status of the targets on it at this row (✓ pass, ✗ miss)."""
    v = row.get(metric)
    if v is None:
        return "—"
    st = [row["targets"].get(n) for n in names if n in row["targets"]]
    mark = " ✗" if "miss" in st else (" ✓" if "pass" in st else "")
    return f"{v:.2f}{mark}"


TABLE_HEADER = ["shape", "M", "bf16", "cuBLASLt", "cuBLASLt-fast", "vLLM-CUTLASS", "ours", "dispatch",
                "×dense", "×vLLM", "cuSPARSELt", "×cuSPARSELt", "lin ours", "lin vLLM", "×lin vLLM", "TB/s", "%HBM"]


def table_row(r: dict) -> list[str]:
    """One markdown table row of an enriched row (the columns of TABLE_HEADER)."""
    dense_targets = [t.name for t in TARGETS if t.metric == "x_dense"]
    return [r["shape"], str(r["m"]), _f(r.get("bf16_us")), _f(r.get("fp8_us")), _f(r.get("fp8_fast_accum_us")),
            _f(r.get("vllm_cutlass_us")), _f(r.get("dispatched_us") or r.get("sparse_us")), str(r.get("dispatch", "")),
            _x(r, "x_dense", dense_targets) + (f" ({r['fastest_dense']})" if r.get("fastest_dense") else ""),
            _x(r, "x_vllm_cutlass", []), _f(r.get("cslt_cached_us")), _x(r, "x_cslt", ["vs cuSPARSELt"]),
            _f(r.get("sparse_linear_us")), _f(r.get("vllm_linear_us")),
            _x(r, "x_vllm_linear", ["whole-op vs vLLM M<=64"]), _f(r.get("sparse_tbs"), "{:.2f}"),
            _f(None if r.get("sparse_hbm_util") is None else 100 * r["sparse_hbm_util"], "{:.0f}")]


def markdown(result: dict) -> str:
    """The report of one benchmark result ({"environment": ..., "rows": [...]})."""
    env = result["environment"]
    peaks = env.get("peaks") or DEFAULT_PEAKS
    rows = enrich(result["rows"], peaks)
    lines = [f"# Sparse-FP8 GEMM benchmark — {env.get('gpu')}, {env.get('date')}", ""]
    lines.append(f"torch {env.get('torch')} (CUDA {env.get('cuda')}), driver/clock/power {env.get('driver')}, "
                 f"CUTLASS {env.get('cutlass')}, library `{env.get('library')}`, commit {env.get('commit') or 'not recorded'}, "
                 f"tuning table {env.get('tuning_table') or 'not recorded'}.")
    lines.append(f"Peers: vLLM {env.get('vllm', 'not measured')}; cuSPARSELt {env.get('cusparselt', 'not measured')}.")
    if env.get("command"):
        lines.append(f"Command: `{env['command']}`.")
    lines += ["", f"Median µs, CUDA-graph replays, L2 flushed. `×dense` = fastest dense FP8 GEMM (of cuBLASLt "
              "row-wise, cuBLASLt fast-accum, vLLM CUTLASS; named) / our dispatched GEMM, both on pre-quantized X. "
              "`×cuSPARSELt` = cuSPARSELt with a cached plan (per-channel alpha in-kernel + a per-token rescale "
              "kernel: same output as ours) / our sparse kernel. `lin` = whole op incl. per-token quantization "
              "(vLLM: scaled_fp8_quant per-token + cutlass_scaled_mm). ✓/✗ = target of issue 17 met/missed. "
              f"TB/s = bytes our kernel must move / time; %HBM of {peaks['hbm_tbs']} TB/s ({peaks['label']}).", ""]
    lines += ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
    lines += ["", "## Targets (issue 17)", "", "| target | metric ≥ | pass | miss | skipped | worst (where) |",
              "|---|---|---|---|---|---|"]
    for s in summary(rows):
        worst = "—" if s["worst"] is None else f"{s['worst']:.2f} ({s['worst_at']})"
        lines.append(f"| {s['target']} | {s['metric']} ≥ {s['minimum']} | {s['pass']} | {s['miss']} | {s['skip']} "
                     f"| {worst} |")
    skipped = env.get("skipped") or {}
    if skipped:
        lines += ["", "Skipped columns:"] + [f"- {k}: {v}" for k, v in skipped.items()]
    return "\n".join(lines) + "\n"
