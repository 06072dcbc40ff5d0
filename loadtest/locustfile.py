"""Locust entry point: one open-loop dispatcher user driving an OpenAI-compatible streaming endpoint.

Interactive (web UI at http://127.0.0.1:8089, start with 1 user; the user count is fixed at one dispatcher):

    locust -f $(sparse24-loadtest locustfile) --host http://127.0.0.1:8000 \
        --model tiny --workload multi_turn_chat --workload-scale tiny --qps 2

Headless sweeps use the same user class through `sparse24.loadtest.runner` (one Locust Environment per point).
Locust's statistics show TTFT and E2E per request (its own stream timing would stop at the headers); the
exact per-chunk samples are kept separately (`--samples-out`) because Locust's buckets round latencies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event
from locust import User, events, task
from locust.exception import StopUser

from .arrivals import arrival_times
from .client import OpenAIStreamClient
from .dispatcher import OpenLoopDispatcher
from .metrics import RequestSample


@dataclass
class PointPlan:
    """Everything one load point needs: where to send, what to send, when to send it."""

    base_url: str
    model: str
    prompts: list[str]  # one per scheduled request (cycled if shorter)
    output_tokens: int
    schedule_s: list[float]
    api: str = "completions"
    max_in_flight: int = 256
    drain_timeout_s: float = 60.0
    read_timeout_s: float = 300.0
    api_key: str | None = None
    extra_body: dict = field(default_factory=dict)
    result: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    g = parser.add_argument_group("sparse24 open-loop load")
    g.add_argument("--model", default="", help="served model name (default: the first of /v1/models)")
    g.add_argument("--tokenizer", default="", help="local model dir with the tokenizer (default: /v1/models root)")
    g.add_argument("--workload", default="multi_turn_chat", help="workload profile name (profiles.yaml)")
    g.add_argument("--workload-scale", default="full", help="profile scale, e.g. full or tiny")
    g.add_argument("--workloads-file", default="", help="profile YAML (default: the bundled one)")
    g.add_argument("--qps", type=float, default=1.0, help="target arrival rate, requests/s")
    g.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    g.add_argument("--burstiness", type=float, default=1.0, help="gamma shape; 1 = Poisson")
    g.add_argument("--api", default="completions", choices=["completions", "chat"])
    g.add_argument("--max-in-flight", type=int, default=256)
    g.add_argument("--samples-out", default="", help="write raw per-request samples (JSONL) here")


def _plan_from_options(opts, host: str) -> PointPlan:
    from .profiles import load_profiles
    from .prompts import PromptSynthesizer, load_tokenizer
    from .server import describe_server, local_model_dir

    info = describe_server(host, opts.model or None)
    profile = load_profiles(opts.workloads_file or None).get(opts.workload, opts.workload_scale)
    schedule = arrival_times(opts.qps, opts.duration, opts.burstiness, seed=0)
    synth = PromptSynthesizer(load_tokenizer(opts.tokenizer or local_model_dir(info.root)), api=opts.api)
    prompts = [synth.make(profile.prompt_tokens) for _ in range(len(schedule))]
    return PointPlan(base_url=host, model=info.model, prompts=prompts, output_tokens=profile.output_tokens,
                     schedule_s=list(schedule), api=opts.api, max_in_flight=opts.max_in_flight)


def _report_to_locust(env, sample: RequestSample) -> None:
    """Show each finished request in Locust's statistics (TTFT and E2E rows; failures with their error)."""
    fire = env.events.request.fire
    if sample.success:
        n = sample.n_output_tokens
        fire(request_type="SSE", name="TTFT", response_time=sample.ttft_s * 1000, response_length=n,
             exception=None, context={})
        fire(request_type="SSE", name="E2E", response_time=sample.e2e_s * 1000, response_length=n,
             exception=None, context={})
    else:
        rt = ((sample.finished_s or 0) - (sample.sent_s or sample.scheduled_s)) * 1000
        fire(request_type="SSE", name="E2E", response_time=max(rt, 0.0), response_length=0,
             exception=RuntimeError(sample.error[:200] or "failed"), context={})


class OpenLoopUser(User):
    """Exactly one per run: it runs the whole arrival schedule through the open-loop dispatcher, then stops."""

    fixed_count = 1
    plan: PointPlan | None = None  # set by the sweep runner; built from command-line options otherwise

    @task
    def dispatch(self):
        plan = self.plan or _plan_from_options(self.environment.parsed_options, self.host)
        client = OpenAIStreamClient(plan.base_url, plan.model, api=plan.api, max_connections=plan.max_in_flight,
                                    read_timeout_s=plan.read_timeout_s, api_key=plan.api_key,
                                    extra_body=plan.extra_body)

        def send(sample: RequestSample, now) -> None:
            client.stream(sample, now, plan.prompts[sample.request_id % len(plan.prompts)], plan.output_tokens)

        dispatcher = OpenLoopDispatcher(plan.schedule_s, send, max_in_flight=plan.max_in_flight,
                                        drain_timeout_s=plan.drain_timeout_s,
                                        on_done=lambda s: _report_to_locust(self.environment, s))
        try:
            samples = dispatcher.run()
        except gevent.GreenletExit:  # stopped from the UI: end the in-flight requests too
            dispatcher.abort()
            raise
        finally:
            client.close()
        plan.result.set(samples)
        opts = getattr(self.environment, "parsed_options", None)
        if opts is not None and getattr(opts, "samples_out", ""):
            Path(opts.samples_out).write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples))
        raise StopUser()
