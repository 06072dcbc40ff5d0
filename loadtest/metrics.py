"""Per-request samples and the latency metrics computed from them.

The definitions (TTFT, ITL, TPOT, E2E, percentiles) are `vllm bench serve`'s and live in one place,
`sparse24.serve_app.latency`; this module applies them to client-side request samples:
* Every SSE message that carries a non-empty `choices` list is a *chunk* (its text may be empty, e.g. the
  role-only first chunk of a chat stream); the trailing usage-only message and `[DONE]` are not chunks.
* output_tokens is `usage.completion_tokens` (we fall back to the chunk count when the server sends no usage;
  vLLM falls back to re-tokenizing the text). For goodput a request with one output token counts as TPOT 0.
* Goodput: requests meeting every given SLO (ttft, tpot, e2el in ms) per second.
guidellm differs: it calls the per-request mean (E2E - TTFT)/(out - 1) "inter-token latency" (vLLM's TPOT,
one value per request, so its percentiles are over requests, not over token gaps) and its "time per output
token" is E2E / out (including the first token's wait). Our ITL percentiles are vLLM's per-gap ones.

All times in this module are seconds on one monotonic clock; reported statistics are milliseconds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..serve_app import latency as L


@dataclass
class RequestSample:
    """Raw timing of one request (seconds since the run's start, one monotonic clock)."""

    request_id: int
    scheduled_s: float  # when the arrival process said to send it
    sent_s: float | None = None  # when the request was written (None: never sent)
    chunk_times_s: list[float] = field(default_factory=list)  # each chunk carrying `choices`
    prompt_tokens: int | None = None  # from usage
    output_tokens: int | None = None  # from usage
    status: int = 0  # HTTP status (0: no response)
    error: str = ""
    finished_s: float | None = None  # when the stream ended or failed (None: still running when abandoned)

    @property
    def success(self) -> bool:
        return self.status == 200 and not self.error and len(self.chunk_times_s) > 0

    @property
    def lateness_s(self) -> float | None:
        """Dispatch lateness: how long after its scheduled time the request was actually sent."""
        return None if self.sent_s is None else self.sent_s - self.scheduled_s

    @property
    def end_s(self) -> float | None:
        if self.chunk_times_s:
            return self.chunk_times_s[-1]
        return None

    @property
    def ttft_s(self) -> float | None:
        return L.ttft_s(self.sent_s, self.chunk_times_s) if self.success else None

    @property
    def e2e_s(self) -> float | None:
        return L.e2e_s(self.sent_s, self.chunk_times_s) if self.success else None

    @property
    def itl_s(self) -> list[float]:
        return L.itl_gaps_s(self.chunk_times_s) if self.success else []

    @property
    def n_output_tokens(self) -> int:
        """usage.completion_tokens, else the chunk count."""
        return self.output_tokens if self.output_tokens else len(self.chunk_times_s)

    @property
    def tpot_s(self) -> float | None:
        """(E2E - TTFT) / (out - 1); None when out <= 1 (vLLM leaves such requests out of TPOT stats)."""
        return L.tpot_s(self.sent_s, self.chunk_times_s, self.n_output_tokens) if self.success else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RequestSample":
        return cls(**d)


def in_flight_at(samples: list[RequestSample], times_s: np.ndarray, horizon_s: float) -> np.ndarray:
    """Number of requests sent but not finished at each time (unfinished requests count until `horizon_s`)."""
    starts = np.array([s.sent_s for s in samples if s.sent_s is not None], dtype=float)
    ends = np.array([s.finished_s if s.finished_s is not None else horizon_s
                     for s in samples if s.sent_s is not None], dtype=float)
    if starts.size == 0:
        return np.zeros_like(times_s)
    t = times_s[:, None]
    return ((starts[None, :] <= t) & (ends[None, :] > t)).sum(axis=1).astype(float)


@dataclass(frozen=True)
class SteadyStateCriteria:
    """When a measured point counts as steady (not saturated, schedule kept)."""

    max_p99_lateness_ms: float = 50.0  # dispatch lateness above this means the client could not keep up
    min_achieved_ratio: float = 0.9  # completions in the window / requests sent in the window
    backlog_sigmas: float = 3.0  # in-flight growth above this many sqrt(mean in-flight) (+2) = backlog growing
    n_probe_times: int = 50  # in-flight samples across the window for the backlog fit


def summarize_point(samples: list[RequestSample], window_start_s: float, window_end_s: float,
                    target_qps: float, goodput_slo_ms: dict[str, float] | None = None,
                    criteria: SteadyStateCriteria = SteadyStateCriteria()) -> dict:
    """Statistics of one load point from all its samples (warm-up included in `samples`, excluded here).

    Requests *scheduled* inside [window_start_s, window_end_s) are the measured set (warm-up and drain are
    not); throughput counts completions that *end* inside the window, so a saturated server shows
    achieved < offered. Keys ending in `_ms` are milliseconds, `_qps` requests per second.
    """
    window_s = window_end_s - window_start_s
    if window_s <= 0:
        raise ValueError(f"empty measurement window [{window_start_s}, {window_end_s})")
    measured = [s for s in samples if window_start_s <= s.scheduled_s < window_end_s]
    ok = [s for s in measured if s.success]
    sent = [s for s in measured if s.sent_s is not None]
    ended_in_window = [s for s in samples if s.success and window_start_s <= s.end_s < window_end_s]

    ttfts = [s.ttft_s for s in ok]
    e2es = [s.e2e_s for s in ok]
    tpots = [s.tpot_s for s in ok if s.tpot_s is not None]
    itls = [g for s in ok for g in s.itl_s]
    lateness = [s.lateness_s for s in sent]

    out: dict = dict(
        target_qps=float(target_qps), window_s=window_s,
        requests=len(measured), completed=len(ok), failed=len(measured) - len(ok),
        offered_qps=len(sent) / window_s,
        achieved_qps=len(ended_in_window) / window_s,
        output_tokens_per_s=sum(s.n_output_tokens for s in ended_in_window) / window_s,
        mean_prompt_tokens=float(np.mean([s.prompt_tokens for s in ok if s.prompt_tokens] or [0])),
        mean_output_tokens=float(np.mean([s.n_output_tokens for s in ok] or [0])),
    )
    for name, vals in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2e", e2es)):
        out.update(L.summary_ms(vals, name))
    out.update(L.summary_ms(lateness, "lateness"))
    out["lateness_max_ms"] = float(max(lateness) * 1000.0) if lateness else 0.0

    # goodput exactly like vLLM: all_tpots has 0 for single-token outputs
    if goodput_slo_ms:
        unknown = set(goodput_slo_ms) - {"ttft", "tpot", "e2el"}
        if unknown:
            raise ValueError(f"unknown goodput SLO keys {sorted(unknown)}; expected ttft, tpot, e2el (ms)")
        good = 0
        for s in ok:
            vals = {"ttft": s.ttft_s, "tpot": s.tpot_s or 0.0, "e2el": s.e2e_s}
            if all(vals[k] * 1000.0 <= v for k, v in goodput_slo_ms.items()):
                good += 1
        out["goodput_qps"] = good / window_s
        out["good_fraction"] = good / len(measured) if measured else 0.0

    # steady state: in-flight trend across the window (Little's law: mean in-flight = concurrency)
    probes = np.linspace(window_start_s, window_end_s, criteria.n_probe_times)
    horizon = max([s.end_s or 0.0 for s in samples] + [window_end_s]) + 1e9
    inflight = in_flight_at(samples, probes, horizon)
    slope = float(np.polyfit(probes, inflight, 1)[0]) if len(probes) > 1 else 0.0
    growth = slope * window_s
    mean_conc = float(inflight.mean())
    reasons = []
    if growth > criteria.backlog_sigmas * np.sqrt(max(mean_conc, 1.0)) + 2.0:
        reasons.append(f"backlog growing ({growth:.1f} requests over the window)")
    if out["lateness_p99_ms"] > criteria.max_p99_lateness_ms:
        reasons.append(f"schedule slipped (p99 dispatch lateness {out['lateness_p99_ms']:.1f} ms)")
    if sent and out["achieved_qps"] < criteria.min_achieved_ratio * out["offered_qps"]:
        reasons.append(f"achieved {out['achieved_qps']:.2f} < {criteria.min_achieved_ratio} x offered "
                       f"{out['offered_qps']:.2f} req/s")
    if out["failed"]:
        reasons.append(f"{out['failed']} failed requests")
    out.update(mean_concurrency=mean_conc, backlog_growth_requests=growth,
               steady=not reasons, unsteady_reasons="; ".join(reasons))
    return out
