"""vLLM's own benchmark client (`vllm bench serve`) runs from our venv against our endpoint, with the command the
README documents (`python -m sparse24.serve_app.vllm_cli bench serve ...`), bounded: 4 prompts, 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(600)


def test_vllm_cli_version_answers_for_the_cpu_build():
    out = subprocess.run([sys.executable, "-m", "sparse24.serve_app.vllm_cli", "--version"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from sparse24.serve_app.vllm_compat import vllm_version

    assert out.stdout.strip().splitlines()[-1].startswith(vllm_version().split("+")[0])


def test_vllm_bench_serve_against_our_endpoint(http, sv, tmp_path):
    card = next(c for c in http.get("/v1/models").json()["data"] if c["id"] == sv.main)
    cmd = [sys.executable, "-m", "sparse24.serve_app.vllm_cli", "bench", "serve", "--backend", "openai",
           "--base-url", sv.base_url, "--endpoint", "/v1/completions", "--model", sv.main,
           "--tokenizer", card["root"], "--dataset-name", "random", "--random-input-len", "16",
           "--random-output-len", "8", "--num-prompts", "4", "--max-concurrency", "2", "--ignore-eos",
           "--seed", "0", "--disable-tqdm", "--save-result", "--result-dir", str(tmp_path),
           "--result-filename", "bench.json", "--ready-check-timeout-sec", "0"]
    env = dict(os.environ, OPENAI_API_KEY=sv.api_key)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=env)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    res = json.loads((tmp_path / "bench.json").read_text())
    assert res["completed"] == 4 and res.get("failed", 0) == 0, res
    assert res["total_output_tokens"] == 4 * 8 and res["mean_ttft_ms"] > 0
