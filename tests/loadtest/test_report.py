"""Re-drawing curves from a sweep directory: tables, PNG per profile and capacity profiles per deployment."""
import json

from sparse24.loadtest.cli import main


def _point(dep, qps, itl, steady=True):
    return dict(deployment=dep, profile="multi_turn_chat", model=dep, replicas=1, prompt_tokens=64,
                output_tokens=32, target_qps=qps, offered_qps=qps, achieved_qps=qps, steady=steady,
                itl_mean_ms=itl, itl_p50_ms=itl * 0.8, itl_p90_ms=itl, itl_p99_ms=itl * 1.4, ttft_p50_ms=20.0,
                ttft_p90_ms=40.0, ttft_p99_ms=60.0, tpot_p50_ms=itl, tpot_p90_ms=itl, e2e_p50_ms=300.0,
                e2e_p90_ms=400.0, mean_concurrency=qps * 0.3, mean_prompt_tokens=64, mean_output_tokens=32,
                output_tokens_per_s=qps * 32)


def test_curves_command_rebuilds_tables_plots_and_capacity_profiles(tmp_path, capsys):
    points = [_point("dense", q, v) for q, v in ((1, 10), (2, 20), (4, 60), (8, 90))]
    points += [_point("sparse", q, v, q < 16) for q, v in ((1, 8), (2, 14), (4, 35), (8, 70), (16, 99))]
    meta = dict(created="2026-11-25T00:00:00Z", machine="test", command="pytest",
                config=dict(sla=dict(metric="itl_p90_ms", target_ms=50.0), baseline="dense"))
    (tmp_path / "points.json").write_text(json.dumps(dict(metadata=meta, points=points)))
    assert main(["curves", str(tmp_path)]) == 0
    md = (tmp_path / "capacity.md").read_text()
    assert "| multi_turn_chat | dense | 3.50 |" in md  # 2 + 2 * (50 - 20) / (60 - 20)
    cap = json.loads((tmp_path / "capacity.json").read_text())
    speedups = {(r["deployment"], r["qps"]): r["speedup"] for r in cap["fixed_qps"]}
    assert speedups[("sparse", 2.0)] == 20 / 14
    assert ("sparse", 16.0) not in speedups  # unsteady points are not read as latencies
    assert (tmp_path / "itl_vs_qps_multi_turn_chat.png").read_bytes()[:4] == b"\x89PNG"
    sparse = json.loads((tmp_path / "capacity_profile_sparse.json").read_text())
    assert [p["qps"] for p in sparse["workloads"][0]["points"]] == [1, 2, 4, 8]  # the unsteady 16 left out
