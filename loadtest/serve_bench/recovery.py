"""Cold start and recovery of `serve run deploy/config.yaml`, measured from outside as a user sees them.

1. Cold start: spawn `serve run CONFIG` (its own local Ray, a fresh model cache and vLLM cache dir, so nothing
   built earlier is reused: what a fresh box does) and time until the first streamed token of a completion.
2. Recovery, per trial: 8 streaming clients; once all have tokens, SIGKILL the engine replica process (pid from
   /health); time until every client's stream has ended (error event or close) and until a new request
   succeeds again; and the slowest /health answer meanwhile.

    python -m sparse24.loadtest.serve_bench.recovery --out loadtest/results/serving/startup_recovery_cpu

Writes OUT.json (every trial, machine, versions, command, date) and OUT.md. Network: 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import yaml

from ...serve_app.provenance import describe, run_provenance

REPO = Path(__file__).resolve().parents[2]
_POLL_S = 0.25
_STREAMS = 8


def _config_copy(src: str, port: int, cache_dir: str, out: Path) -> Path:
    """deploy/config.yaml with the HTTP port, the model cache and auth (off) changed; all else as shipped."""
    doc = yaml.safe_load(Path(src).read_text())
    doc["http_options"]["port"] = port
    args = doc["applications"][0]["args"]
    args["cache_dir"] = cache_dir
    args.setdefault("ingress", {})["api_key_env"] = None
    out.write_text(yaml.safe_dump(doc))
    return out


def _first_token_s(base: str, model: str, deadline_s: float, t0: float) -> float:
    """Seconds from t0 until a streamed completion yields its first token (retrying while the app starts)."""
    body = {"model": model, "prompt": "Hello", "max_tokens": 4, "stream": True}
    while time.monotonic() - t0 < deadline_s:
        try:
            with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=httpx.Timeout(60, connect=1)) as r:
                if r.status_code == 200:
                    for line in r.iter_lines():
                        if line.startswith("data: {") and '"text"' in line:
                            return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(_POLL_S)
    raise TimeoutError(f"no first token within {deadline_s} s")


def _stream_until_end(base: str, model: str, started: threading.Barrier, ended: list, i: int) -> None:
    body = {"model": model, "prompt": f"stream {i}", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    first = True
    try:
        with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=httpx.Timeout(120, connect=5)) as r:
            for line in r.iter_lines():
                if first and line.startswith("data: {"):
                    first = False
                    started.wait()
                if line.startswith("data: {\"error\""):
                    ended[i] = ("error_event", time.monotonic())
    except httpx.HTTPError as exc:
        ended[i] = (type(exc).__name__, time.monotonic())
    else:
        ended[i] = ended[i] or ("closed", time.monotonic())
    finally:
        if first:
            started.abort()


def _engine_pid(base: str, model: str, timeout_s: float = 60.0) -> int:
    """The engine replica's pid from /health, once its background probe has answered (right after start-up the
    probe may not have run yet: /health then says so instead of naming a pid)."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{base}/health", timeout=10).json()
            pid = last.get("models", {}).get(model, {}).get("pid")
            if pid:
                return int(pid)
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"/health named no engine pid for {model} within {timeout_s} s (last answer: {last})")


def recovery_trial(base: str, model: str, deadline_s: float) -> dict:
    """Kill the engine replica under 8 streams; seconds until clients ended and service came back."""
    pid = _engine_pid(base, model)
    started = threading.Barrier(_STREAMS + 1, timeout=120)
    ended: list = [None] * _STREAMS
    threads = [threading.Thread(target=_stream_until_end, args=(base, model, started, ended, i), daemon=True)
               for i in range(_STREAMS)]
    for t in threads:
        t.start()
    started.wait()
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    health_max_s, back_s = 0.0, None
    while time.monotonic() - t_kill < deadline_s:
        t = time.monotonic()
        try:
            httpx.get(f"{base}/health", timeout=5)
        except httpx.HTTPError:
            pass
        health_max_s = max(health_max_s, time.monotonic() - t)
        try:
            r = httpx.post(f"{base}/v1/completions", json={"model": model, "prompt": "back?", "max_tokens": 2},
                           timeout=5)
            if r.status_code == 200:
                back_s = time.monotonic() - t_kill
                break
        except httpx.HTTPError:
            pass
        time.sleep(_POLL_S)
    for t in threads:
        t.join(30)
    new_pid = httpx.get(f"{base}/health", timeout=10).json()["models"][model].get("pid")
    ends = [e for e in ended if e is not None]
    return {"killed_pid": pid, "new_pid": new_pid, "streams": _STREAMS, "streams_ended": len(ends),
            "stream_end_kinds": sorted({e[0] for e in ends}),
            "streams_ended_within_s": max((e[1] - t_kill for e in ends), default=None),
            "service_back_s": back_s, "health_slowest_answer_s": round(health_max_s, 3)}


def run(config: str, port: int, trials: int, cold_deadline_s: float, recovery_deadline_s: float,
        log: Path) -> dict:
    """Start `serve run` on a fresh cache, measure cold start and `trials` recoveries, stop it; the results."""
    work = Path(tempfile.mkdtemp(prefix="sparse24_recovery_"))
    cfg = _config_copy(config, port, str(work / "models"), work / "config.yaml")
    model = yaml.safe_load(cfg.read_text())["applications"][0]["args"]["models"][0]["name"]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "SPARSE24_API_KEY")}
    env.update(RAY_AUTH_MODE="disabled", VLLM_CACHE_ROOT=str(work / "vllm_cache"))
    base = f"http://127.0.0.1:{port}"
    # `--address local`: a new Ray of its own, even if another one runs on this machine (tests, the lead's).
    # The venv's own `serve`; on the GPU box the wheelhouse puts it on PATH instead (~/vw-site/bin).
    serve = Path(sys.executable).with_name("serve")
    serve = str(serve) if serve.exists() else (shutil.which("serve") or str(serve))
    cmd = [serve, "run", "--address", "local", str(cfg)]
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    result: dict = {"command": " ".join(cmd[1:]), "config": config}
    try:
        result["cold_first_token_s"] = round(_first_token_s(base, model, cold_deadline_s, t0), 2)
        result["trials"] = [recovery_trial(base, model, recovery_deadline_s) for _ in range(trials)]
    finally:
        _stop(proc)
    return result


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C (serve run shuts its app and Ray down), then SIGKILL its whole process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _r(x, nd: int = 1):
    return "-" if x is None else round(x, nd)


def _markdown(doc: dict) -> str:
    after = doc.get("loadavg_after")
    if "provenance" in doc:
        before = doc["loadavg_before"]
        machine = describe(doc["provenance"])
    else:  # results written before serve_app.provenance
        m = doc["machine"]
        before, machine = m["loadavg"], f"{m['cpu']}, {m['cores']} cores"
    lines = ["# Cold start and recovery of `serve run deploy/config.yaml` (CPU)", "",
             f"- Date (UTC): {doc['date_utc']}; machine: {machine} (shared VM, noisy); "
             f"load average (1/5/15 min) before: {', '.join(f'{x:.1f}' for x in before)}"
             + (f"; after: {', '.join(f'{x:.1f}' for x in after)}" if after else ""),
             f"- vLLM {m['vllm']}, Ray {m['ray']}, torch {m['torch']}; config: `{doc['config']}`",
             f"- Bench: `{doc['bench_command']}`; server: `serve {doc['command']}` (the config with port, model "
             "cache and auth changed, own Ray)", "",
             f"Cold start (fresh model cache, fresh vLLM cache): first streamed token **{_r(doc['cold_first_token_s'])} s**"
             " after `serve run`.", "",
             "| trial | streams ended (s after kill -9) | how | service back (s after kill -9) | slowest /health (s) |",
             "|---|---|---|---|---|"]
    for i, t in enumerate(doc["trials"]):
        lines.append(f"| {i} | {t['streams_ended']}/{t['streams']} within {_r(t['streams_ended_within_s'], 2)} | "
                     f"{', '.join(t['stream_end_kinds'])} | {_r(t['service_back_s'])} | "
                     f"{_r(t['health_slowest_answer_s'], 2)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "deploy" / "config.yaml"))
    ap.add_argument("--port", type=int, default=8120)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--cold-deadline-s", type=float, default=300)
    ap.add_argument("--recovery-deadline-s", type=float, default=180)
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md (path without suffix)")
    ap.add_argument("--markdown-from", default=None, help=argparse.SUPPRESS)  # re-render OUT.md from a JSON
    a = ap.parse_args()
    if a.markdown_from:
        print(_markdown(json.loads(Path(a.markdown_from).read_text())))
        return
    started = datetime.now(timezone.utc)
    prov = run_provenance("python -m sparse24.loadtest.serve_bench.recovery " + " ".join(sys.argv[1:]))
    log = Path(tempfile.gettempdir()) / f"sparse24_serve_run_{a.port}.log"
    res = run(a.config, a.port, a.trials, a.cold_deadline_s, a.recovery_deadline_s, log)
    res["loadavg_after"] = os.getloadavg()
    doc = {"what": "cold start and recovery after kill -9 of the engine replica", "provenance": prov, "loadavg_before": os.getloadavg(),
           "date_utc": started.isoformat(timespec="seconds"), "serve_run_log": str(log),
           "bench_command": "python -m sparse24.loadtest.serve_bench.recovery " + " ".join(sys.argv[1:]), **res}
    print(json.dumps(doc, indent=2))
    if a.out:
        Path(a.out).with_suffix(".json").write_text(json.dumps(doc, indent=2))
        Path(a.out).with_suffix(".md").write_text(_markdown(doc))


if __name__ == "__main__":
    main()
