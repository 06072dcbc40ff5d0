"""Runs a sweep against live servers: probe, warm up, measure every point, write results as it goes."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from tqdm import tqdm

from .arrivals import arrival_times
from .locustfile import PointPlan
from .metrics import SteadyStateCriteria, summarize_point
from .profiles import load_profiles
from .prompts import PromptSynthesizer, load_tokenizer
from .resume import MeasuredPoints
from .report import run_metadata, write_capacity, write_points, write_samples
from .runner import run_point
from .server import describe_server, local_model_dir
from .sweep import SweepConfig, api_key, auto_points, point_seed

log = logging.getLogger("sparse24.loadtest")
_WARMUP_REQUESTS = 2  # requests per deployment and profile before its first point (compile, caches)
_WARMUP_RETRY_S = 2.0


def _warm_up(base: dict, synth: PromptSynthesizer, prompt_tokens: int, output_tokens: int,
             ready_timeout_s: float) -> None:
    """A few warm-up requests (sent together), retried until they succeed (engines may still be starting)."""
    deadline = time.monotonic() + ready_timeout_s
    while True:
        plan = PointPlan(prompts=[synth.make(prompt_tokens) for _ in range(_WARMUP_REQUESTS)],
                         output_tokens=output_tokens, schedule_s=[0.0] * _WARMUP_REQUESTS, **base)
        samples, _ = run_point(plan)
        bad = [s.error for s in samples if not s.success]
        if not bad:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm-up requests to {base['base_url']} still failing after "
                               f"{ready_timeout_s:.0f} s: {bad[0][:300]}")
        log.info("%s not ready yet (%s); retrying", base["base_url"], bad[0][:120])
        time.sleep(_WARMUP_RETRY_S)


def _measure_point(cfg: SweepConfig, criteria: SteadyStateCriteria, out: Path, dep, model: str, prof, base: dict,
                   synth: PromptSynthesizer, qps: float) -> dict:
    """One load point: schedule, prompts, Locust run, summary (+ identity columns); raw samples to out/samples."""
    span = cfg.warmup_s + cfg.duration_s
    sched = arrival_times(qps, span, cfg.burstiness, seed=point_seed(cfg.seed, dep.name, prof.name, qps))
    plan = PointPlan(prompts=[synth.make(prof.prompt_tokens) for _ in range(len(sched))],
                     output_tokens=prof.output_tokens, schedule_s=list(sched), **base)
    samples, locust_totals = run_point(plan)
    p = summarize_point(samples, cfg.warmup_s, span, qps, cfg.goodput_slo_ms or None, criteria)
    p.update(deployment=dep.name, profile=prof.name, model=model, replicas=dep.replicas,
             prompt_tokens=prof.prompt_tokens, output_tokens=prof.output_tokens, **locust_totals)
    if p["completed"] and (abs(p["mean_prompt_tokens"] - prof.prompt_tokens) > 0.5
                           or abs(p["mean_output_tokens"] - prof.output_tokens) > 0.5):
        log.warning("%s/%s @ %g qps: server counted %.1f prompt / %.1f output tokens, asked %d / %d", dep.name,
                    prof.name, qps, p["mean_prompt_tokens"], p["mean_output_tokens"], prof.prompt_tokens,
                    prof.output_tokens)
    name = f"{dep.name}__{prof.name}__{qps:g}qps.jsonl"
    write_samples(out / "samples" / name, samples)
    p["samples_file"] = f"samples/{name}"
    return p


def run_sweep(cfg: SweepConfig, out_dir: str | Path, command: str, progress: bool = True,
              resume: bool = False) -> list[dict]:
    """Measure every deployment x profile x QPS point; returns the point dicts (also written to out_dir).
    `resume`: keep the points already in out_dir/points.json (same load settings) and measure only the rest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = MeasuredPoints.load(out, cfg.model_dump()) if resume else MeasuredPoints([])
    profiles = load_profiles(cfg.profiles_file)
    wanted = [profiles.get(name, cfg.profile_scale) for name in cfg.profiles]  # unknown names fail before load
    criteria = SteadyStateCriteria(**cfg.steady)
    targets = []
    for dep in cfg.deployments:  # probe all first: fail fast on a wrong URL, model or tokenizer
        info = describe_server(dep.base_url, dep.model)
        tok_dir = dep.tokenizer or local_model_dir(info.root)
        for prof in wanted:
            need = prof.prompt_tokens + prof.output_tokens
            if info.max_model_len is not None and need > info.max_model_len:
                raise ValueError(f"profile {prof.name} needs {need} tokens but {dep.name} serves "
                                 f"max_model_len={info.max_model_len}; use a smaller profile_scale")
        targets.append((dep, info, PromptSynthesizer(load_tokenizer(tok_dir), api=cfg.api, seed=cfg.seed)))
    meta = run_metadata(command, [dict(name=d.name, base_url=d.base_url, model=i.model, replicas=d.replicas,
                                       tokenizer=d.tokenizer or local_model_dir(i.root)) for d, i, _ in targets])
    meta["config"] = cfg.model_dump()
    if len(done):
        log.info("resuming: %d points already measured in %s", len(done), out)
        meta["resumed_points"] = len(done)
    points: list[dict] = list(done.points)
    n_total = len(targets) * len(wanted) * (len(cfg.qps) if cfg.qps else cfg.auto_qps.max_points)
    bar = tqdm(total=n_total, desc="load points", unit="pt", disable=not progress)
    try:
        for dep, info, synth in targets:
            base = dict(base_url=dep.base_url, model=info.model, api=cfg.api, max_in_flight=cfg.max_in_flight,
                        drain_timeout_s=cfg.drain_timeout_s, read_timeout_s=cfg.read_timeout_s, api_key=api_key(dep))
            for prof in wanted:
                if not done.has_all(dep.name, prof.name, cfg.qps):
                    _warm_up(base, synth, prof.prompt_tokens, prof.output_tokens, cfg.ready_timeout_s)

                def measure(qps: float, dep=dep, info=info, prof=prof, base=base, synth=synth) -> dict:
                    if (seen := done.get(dep.name, prof.name, qps)) is not None:
                        bar.update(1)
                        return seen
                    p = _measure_point(cfg, criteria, out, dep, info.model, prof, base, synth, qps)
                    points.append(p)
                    write_points(out, points, meta)
                    bar.update(1)
                    bar.set_postfix_str(f"{dep.name}/{prof.name} {qps:g} qps: {cfg.sla.metric}="
                                        f"{p[cfg.sla.metric]:.1f} ms{'' if p['steady'] else ' UNSTEADY'}")
                    return p

                if cfg.qps:
                    unsteady = 0
                    for q in cfg.qps:
                        if cfg.stop_after_unsteady is not None and unsteady >= cfg.stop_after_unsteady:
                            log.info("%s/%s: %d unsteady point(s), skipping %g qps and above", dep.name,
                                     prof.name, unsteady, q)
                            bar.update(len(cfg.qps) - cfg.qps.index(q))
                            break
                        unsteady += not measure(q)["steady"]
                else:
                    auto_points(cfg.auto_qps, cfg.sla, measure)
    except KeyboardInterrupt:  # keep what was measured: curves from the points so far
        log.warning("interrupted: writing results of the %d points measured so far", len(points))
        meta["interrupted"] = True
    bar.close()
    meta["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)  # other tenants of a shared box skew latency
    write_points(out, points, meta)
    if points:
        write_capacity(out, points, meta, cfg.sla.metric, cfg.sla.target_ms, cfg.baseline)
    return points
