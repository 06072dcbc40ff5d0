"""A sweep may span sessions: --resume keeps the measured points and measures only the missing ones."""
import json
import subprocess
import sys
import textwrap

import pytest

from sparse24.loadtest.resume import MeasuredPoints


def _write(tmp_path, points, **config):
    cfg = dict(profile_scale="full", duration_s=60, warmup_s=10, burstiness=1.0, api="completions", seed=0,
               max_in_flight=256)
    cfg.update(config)
    (tmp_path / "points.json").write_text(json.dumps({"metadata": {"config": cfg}, "points": points}))
    return cfg


def _pt(dep, qps, prof="multi_turn_chat"):
    return {"deployment": dep, "profile": prof, "target_qps": qps}


def test_measured_points_are_found_by_deployment_profile_and_qps(tmp_path):
    cfg = _write(tmp_path, [_pt("a", 1.0), _pt("a", 2.5), _pt("b", 1.0)])
    done = MeasuredPoints.load(tmp_path, cfg)
    assert len(done) == 3 and done.get("a", "multi_turn_chat", 2.5000000001)["target_qps"] == 2.5
    assert done.get("a", "code_completion", 1.0) is None and done.get("c", "multi_turn_chat", 1.0) is None
    assert done.has_all("a", "multi_turn_chat", [1, 2.5]) and not done.has_all("a", "multi_turn_chat", [1, 4])
    assert not done.has_all("a", "multi_turn_chat", None)  # auto QPS search: always warm up and search


def test_no_earlier_run_means_nothing_measured(tmp_path):
    assert len(MeasuredPoints.load(tmp_path / "absent", {})) == 0


def test_points_measured_under_other_load_settings_are_refused_by_name(tmp_path):
    cfg = _write(tmp_path, [_pt("a", 1.0)])
    with pytest.raises(ValueError, match=r"duration_s.*\(60, 20\)"):
        MeasuredPoints.load(tmp_path, dict(cfg, duration_s=20))


_RUN = textwrap.dedent("""
    # run_sweep with every network/tokenizer step replaced; records what would have been measured.
    # A subprocess: execute imports locust, whose gevent monkey-patching must not enter the pytest process.
    import json, sys
    from sparse24.loadtest import execute
    from sparse24.loadtest.server import ServerInfo
    from sparse24.loadtest.sweep import SweepConfig
    out, qps, resume, extra = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", json.loads(sys.argv[4])
    unsteady_from = extra.pop("_unsteady_from", {})  # deployment -> first QPS that saturates it
    log = []
    def measure(cfg, criteria, o, dep, model, prof, base, synth, q):
        log.append([dep.name, q])
        steady = q < unsteady_from.get(dep.name, float("inf"))
        return dict(deployment=dep.name, profile=prof.name, target_qps=q, steady=steady, itl_p90_ms=1.0, model=model)
    execute.describe_server = lambda url, model: ServerInfo(model="m", root="", max_model_len=None)
    execute.local_model_dir = lambda root: "/nonexistent"
    execute.load_tokenizer = lambda d: None
    execute.PromptSynthesizer = lambda tok, api, seed: None
    execute._warm_up = lambda *a, **k: log.append("warm-up")
    execute._measure_point = measure
    execute.write_capacity = lambda *a, **k: []
    cfg = SweepConfig.model_validate(dict(
        deployments=[dict(name=n, base_url="http://127.0.0.1:9") for n in "ab"], profiles=["multi_turn_chat"],
        qps=qps, duration_s=5, warmup_s=1, sla=dict(metric="itl_p90_ms", target_ms=50), **extra))
    points = execute.run_sweep(cfg, out, "test", progress=False, resume=resume)
    print(json.dumps(dict(log=log, points=[[p["deployment"], p["target_qps"]] for p in points])))
""")


def _sweep(out, qps, resume, **extra):
    r = subprocess.run([sys.executable, "-c", _RUN, str(out), json.dumps(qps), "1" if resume else "0", json.dumps(extra)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_run_sweep_resume_measures_only_missing_points_and_keeps_the_earlier_ones(tmp_path):
    first = _sweep(tmp_path, [1, 2], resume=False)
    assert first["log"] == ["warm-up", ["a", 1], ["a", 2], "warm-up", ["b", 1], ["b", 2]]
    second = _sweep(tmp_path, [1, 2, 4], resume=True)
    assert second["log"] == ["warm-up", ["a", 4], "warm-up", ["b", 4]]
    assert sorted(map(tuple, second["points"])) == [(d, q) for d in "ab" for q in (1, 2, 4)]
    assert json.loads((tmp_path / "points.json").read_text())["metadata"]["resumed_points"] == 4
    assert _sweep(tmp_path, [1, 4], resume=True)["log"] == []  # nothing missing: not even a warm-up request
    assert sorted(map(tuple, _sweep(tmp_path, [8], resume=False)["points"])) == [("a", 8), ("b", 8)]


def test_listed_qps_stop_after_the_first_unsteady_point_per_deployment_also_on_resume(tmp_path):
    sat = {"_unsteady_from": {"a": 2}}
    first = _sweep(tmp_path, [1, 2, 4, 8], resume=False, stop_after_unsteady=1, **sat)
    assert first["log"] == ["warm-up", ["a", 1], ["a", 2], "warm-up", ["b", 1], ["b", 2], ["b", 4], ["b", 8]]
    again = _sweep(tmp_path, [1, 2, 4, 8], resume=True, stop_after_unsteady=1, **sat)
    assert again["log"] == ["warm-up"]  # a's list is unfinished (no 4, 8) but its measured 2 qps was unsteady
    with pytest.raises(AssertionError, match="ascending"):
        _sweep(tmp_path, [4, 1], resume=False, stop_after_unsteady=1)


def test_cli_deployments_filter_names_unknown_deployments(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(dict(deployments=[{"name": "a", "base_url": "http://127.0.0.1:9"}],
                                   profiles=["multi_turn_chat"], qps=[1], sla={"target_ms": 50})))
    r = subprocess.run([sys.executable, "-m", "sparse24.loadtest.cli", "sweep", str(cfg), "--out", str(tmp_path / "o"),
                        "--deployments", "a,zzz"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "zzz" in r.stderr
