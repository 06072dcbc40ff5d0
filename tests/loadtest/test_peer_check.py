"""The peer cross-check: its agreement rule, bad arguments, and one bounded run of both tools against a server
of known timing (first chunk 20 ms after receipt, then one every 5 ms) on 127.0.0.1."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from sparse24.loadtest.peer_check import agreement, main


def _run(ttft, tpot, itl):
    return {"ttft": ttft, "tpot": tpot, "itl": itl}


def test_agreement_is_the_median_over_runs_within_the_tolerance():
    runs = {"ours": [_run(22, 5.4, 5.0), _run(25, 5.6, 5.1), _run(90, 5.5, 5.0)],  # one outlier run
            "vllm": [_run(21, 5.0, 5.0), _run(20, 5.0, 5.0), _run(23, 5.0, 4.9)]}
    a = agreement(runs, 0.10)
    assert a["ttft"]["ours_ms"] == 25 and a["ttft"]["vllm_ms"] == 21
    assert a["ttft"]["ratio"] == pytest.approx(25 / 21) and a["ttft"]["agree"] is False  # +19 %
    assert a["tpot"]["ratio"] == pytest.approx(1.10) and a["tpot"]["agree"] is True  # exactly at the bound
    assert a["itl"]["agree"] is True


@pytest.mark.parametrize("args, message", [(["--qps", "0"], "positive rates"), (["--qps", "a,b"], "numbers"),
                                           (["--runs", "0"], "--runs >= 1")])
def test_bad_arguments_are_refused_naming_the_problem(args, message, capsys):
    with pytest.raises(SystemExit):
        main(["--base-url", "http://127.0.0.1:1", "--model", "m", "--tokenizer", "/nonexistent", "--out", "/tmp/x",
              *args])
    assert message in capsys.readouterr().err


@pytest.mark.timeout(400)
def test_both_tools_against_the_timing_server(tmp_path):
    from sparse24.kernels.tiny_model import build_tokenizer

    tok = tmp_path / "tok"
    build_tokenizer(tok, 512)
    port = 8392
    server = subprocess.Popen([sys.executable, "-m", "sparse24.loadtest.timing_server", "--port", str(port)],
                              start_new_session=True)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        out = tmp_path / "peer"
        p = subprocess.run([sys.executable, "-m", "sparse24.loadtest.peer_check", "--base-url",
                            f"http://127.0.0.1:{port}", "--model", "timing", "--tokenizer", str(tok), "--input-len", "16",
                            "--output-len", "16", "--qps", "20", "--num-prompts", "12", "--runs", "2", "--out", str(out)],
                           capture_output=True, text=True, timeout=380)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.with_suffix(".json").read_text())
    point = doc["points"][0]
    assert [r["completed"] for r in point["runs"]["ours"]] == [12, 12]
    assert [r["completed"] for r in point["runs"]["vllm"]] == [12, 12]
    for tool in ("ours", "vllm"):  # each tool reads the known schedule (loose: a busy 2-core box)
        assert point["agreement"]["itl"][f"{tool}_ms"] == pytest.approx(5.0, abs=2.5)
        assert point["agreement"]["tpot"][f"{tool}_ms"] == pytest.approx(5.0, abs=2.5)
        assert 15.0 <= point["agreement"]["ttft"][f"{tool}_ms"] < 200.0
    assert doc["provenance"]["git_commit"] and "| 20 | TTFT |" in out.with_suffix(".md").read_text()
