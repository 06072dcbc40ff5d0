"""Open-loop dispatcher: sends requests at scheduled times, one greenlet each, whatever the server does.

Locust users are closed-loop (a user waits for its response before the next request), which lowers offered
load exactly when the server saturates (coordinated omission). This dispatcher keeps the schedule: it sleeps
until each arrival time and spawns a greenlet for the request without waiting for earlier ones. A bounded
in-flight limit protects the client; an arrival that finds the limit reached is recorded as failed
("client in-flight limit"), never delayed. Each sample records its dispatch lateness (sent - scheduled).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import gevent
import gevent.event
from gevent.pool import Pool

from .metrics import RequestSample

# A request function fills in sent_s, chunk_times_s, usage, status and error of the sample, reading time with
# the `now` callable it is given (seconds since the run start); finished_s is set here when it returns or raises.
SendFn = Callable[[RequestSample, Callable[[], float]], None]


class OpenLoopDispatcher:
    """Runs one schedule of arrivals (seconds from the start) through `send`."""

    def __init__(self, schedule_s: Sequence[float], send: SendFn, max_in_flight: int = 256,
                 drain_timeout_s: float = 60.0, on_done: Callable[[RequestSample], None] | None = None):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0 s, got {drain_timeout_s}")
        self.schedule_s = [float(t) for t in schedule_s]
        self.send = send
        self.max_in_flight = max_in_flight
        self.drain_timeout_s = drain_timeout_s
        self.on_done = on_done
        self.samples: list[RequestSample] = []
        self._t0: float | None = None
        self._pool: Pool | None = None

    def now(self) -> float:
        """Seconds since the dispatcher started (monotonic)."""
        return time.perf_counter() - self._t0

    def _one(self, sample: RequestSample) -> None:
        try:
            self.send(sample, self.now)
        except gevent.GreenletExit:
            sample.error = sample.error or "abandoned after drain"
            raise  # finished_s stays None: it was still in flight
        except Exception as e:  # noqa: BLE001 - any client failure is a failed sample, not a crashed run
            sample.error = sample.error or f"{type(e).__name__}: {e}"
        if sample.finished_s is None:
            sample.finished_s = self.now()
        if self.on_done is not None:
            self.on_done(sample)

    def run(self, stop_event: gevent.event.Event | None = None) -> list[RequestSample]:
        """Dispatch every arrival, then wait up to drain_timeout_s for in-flight requests.

        Requests still running after the drain are killed and recorded with error "abandoned after drain".
        `stop_event` (set from elsewhere, e.g. Locust's stop button) ends dispatching early.
        """
        pool = self._pool = Pool(self.max_in_flight)
        self._t0 = time.perf_counter()
        for i, t in enumerate(self.schedule_s):
            if stop_event is not None and stop_event.is_set():
                break
            delay = t - self.now()
            if delay > 0:
                if stop_event is not None:
                    if stop_event.wait(delay):
                        break
                else:
                    gevent.sleep(delay)
            sample = RequestSample(request_id=i, scheduled_s=t)
            self.samples.append(sample)
            if pool.full():
                sample.error = f"client in-flight limit {self.max_in_flight} reached"
                sample.finished_s = self.now()
                continue
            pool.spawn(self._one, sample)
        pool.join(timeout=self.drain_timeout_s)
        if len(pool):
            pool.kill(block=True, timeout=5)
        return self.samples

    def abort(self) -> None:
        """Kill every in-flight request (their samples get error "abandoned after drain")."""
        if self._pool is not None:
            self._pool.kill(block=True, timeout=5)
