"""Per-replica autoscaling stats: the names replicas report and a helper that computes them.

The serving deployment (serve_app) owns one :class:`ReplicaStatsWindow` per replica, feeds it
request arrivals and streamed-token gaps, and returns ``window.snapshot()`` from Ray Serve's
``record_autoscaling_stats()`` hook. The autoscaling policy reads the same names back from
``AutoscalingContext.raw_metrics`` / ``aggregated_metrics``. Both sides import the names from
here, so they cannot drift apart.

ITL and TTFT mean what they mean everywhere in the project (`sparse24.serve_app.latency`, the
`vllm bench serve` definitions): one ITL value per gap between successive chunks (engine output steps),
percentiles by numpy's linear interpolation over the pooled gaps of the window.

Units: seconds for latencies, requests/s for rates, tokens for lengths.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Deque, Dict, Iterable, Optional, Tuple

from ..latency import percentile

# --- stat names (keys of the dict returned by record_autoscaling_stats) -------------------
ITL_P50_S = "sparse24_itl_p50_s"
ITL_P90_S = "sparse24_itl_p90_s"
ITL_P99_S = "sparse24_itl_p99_s"
TTFT_P90_S = "sparse24_ttft_p90_s"
ITL_SAMPLES = "sparse24_itl_samples"  # token gaps in the window (how much to trust the percentiles)
ARRIVAL_RATE_RPS = "sparse24_arrival_rate_rps"  # requests received per second over the window
MEAN_PROMPT_TOKENS = "sparse24_mean_prompt_tokens"
MEAN_OUTPUT_TOKENS = "sparse24_mean_output_tokens"  # requested max_tokens (or produced, if known)
RUNNING_REQUESTS = "sparse24_running_requests"  # in-flight requests right now
WINDOW_S = "sparse24_stats_window_s"

#: ITL percentile name -> stat key, for SLA configs that name a percentile.
ITL_PERCENTILE_KEYS: Dict[int, str] = {50: ITL_P50_S, 90: ITL_P90_S, 99: ITL_P99_S}

ALL_STATS: Tuple[str, ...] = (
    ITL_P50_S, ITL_P90_S, ITL_P99_S, TTFT_P90_S, ITL_SAMPLES, ARRIVAL_RATE_RPS,
    MEAN_PROMPT_TOKENS, MEAN_OUTPUT_TOKENS, RUNNING_REQUESTS, WINDOW_S,
)

#: Default look-back of the replica window. Short enough to see a step within seconds,
#: long enough to hold a few hundred token gaps at a few streams.
DEFAULT_WINDOW_S = 10.0
#: Upper bound on stored token gaps per replica (memory bound under heavy load).
MAX_GAPS = 20_000


class ReplicaStatsWindow:
    """Sliding window of one replica's recent requests and token gaps.

    Not thread-safe by itself; the serving replica calls it from its asyncio loop only.
    ``clock`` returns seconds (monotonic); tests pass a fake clock.
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, clock=time.monotonic):
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s!r}")
        self.window_s = float(window_s)
        self._clock = clock
        self._gaps: Deque[Tuple[float, float]] = deque()  # (time, gap_s)
        self._ttfts: Deque[Tuple[float, float]] = deque()  # (time, ttft_s)
        self._arrivals: Deque[Tuple[float, int, int]] = deque()  # (time, prompt, output)
        self._running = 0
        self._started = clock()

    # --- feeding -----------------------------------------------------------------------
    def request_started(self, prompt_tokens: int, output_tokens: int, now: Optional[float] = None) -> None:
        """A request arrived at this replica (output_tokens: max_tokens asked for)."""
        t = self._clock() if now is None else now
        self._arrivals.append((t, int(prompt_tokens), int(output_tokens)))
        self._running += 1

    def request_finished(self, now: Optional[float] = None) -> None:
        """A request left this replica (finished, failed or cancelled)."""
        self._running = max(0, self._running - 1)

    def first_token(self, ttft_s: float, now: Optional[float] = None) -> None:
        """Time to first token of one request, in seconds."""
        t = self._clock() if now is None else now
        self._ttfts.append((t, float(ttft_s)))

    def token_gaps(self, gaps_s: Iterable[float], now: Optional[float] = None) -> None:
        """Inter-token gaps (seconds) observed since the last call: one per gap between successive
        chunks (vLLM's `IterationStats.inter_token_latencies_iter`: one per engine output step of a
        request, however many tokens that step carried)."""
        t = self._clock() if now is None else now
        for g in gaps_s:
            self._gaps.append((t, float(g)))
        while len(self._gaps) > MAX_GAPS:
            self._gaps.popleft()

    # --- reading -----------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        cut = now - self.window_s
        for dq in (self._gaps, self._ttfts, self._arrivals):
            while dq and dq[0][0] < cut:
                dq.popleft()

    def snapshot(self, now: Optional[float] = None) -> Dict[str, float]:
        """The stats dict for ``record_autoscaling_stats`` (all values finite floats).

        Percentiles are 0.0 when the window holds no token gaps; ITL_SAMPLES says so.
        """
        t = self._clock() if now is None else now
        self._prune(t)
        gaps = [g for _, g in self._gaps]
        ttfts = [v for _, v in self._ttfts]
        n_arr = len(self._arrivals)
        # Rate over the part of the window this replica has existed for (no bias at start).
        span = max(1e-3, min(self.window_s, t - self._started))
        out = {
            ITL_P50_S: percentile(gaps, 50),
            ITL_P90_S: percentile(gaps, 90),
            ITL_P99_S: percentile(gaps, 99),
            TTFT_P90_S: percentile(ttfts, 90),
            ITL_SAMPLES: float(len(gaps)),
            ARRIVAL_RATE_RPS: n_arr / span,
            MEAN_PROMPT_TOKENS: (sum(a[1] for a in self._arrivals) / n_arr) if n_arr else 0.0,
            MEAN_OUTPUT_TOKENS: (sum(a[2] for a in self._arrivals) / n_arr) if n_arr else 0.0,
            RUNNING_REQUESTS: float(self._running),
            WINDOW_S: self.window_s,
        }
        return {k: (0.0 if math.isnan(v) else float(v)) for k, v in out.items()}
