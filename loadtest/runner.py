"""Run one load point headless through Locust (library API, one local runner, one OpenLoopUser)."""
from __future__ import annotations

import gevent
from locust.env import Environment

from .locustfile import OpenLoopUser, PointPlan
from .metrics import RequestSample

_RUNNER_MARGIN_S = 30.0  # beyond schedule + drain before we call a point hung


def run_point(plan: PointPlan) -> tuple[list[RequestSample], dict]:
    """Dispatch plan's schedule; return the raw samples and Locust's own totals (for a cross-check)."""
    user_cls = type("PointUser", (OpenLoopUser,), {"plan": plan, "host": plan.base_url})
    env = Environment(user_classes=[user_cls])
    runner = env.create_local_runner()
    try:
        runner.start(1, spawn_rate=1)
        limit = (plan.schedule_s[-1] if plan.schedule_s else 0.0) + plan.drain_timeout_s + _RUNNER_MARGIN_S
        samples = plan.result.get(timeout=limit)
    except gevent.Timeout as e:
        raise TimeoutError(f"load point did not finish within {limit:.0f} s") from e
    finally:
        runner.quit()
    total = env.stats.total
    locust_totals = dict(locust_requests=total.num_requests, locust_failures=total.num_failures)
    return samples, locust_totals
