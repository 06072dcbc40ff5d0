"""Capacity curves: fixed-SLA interpolation and its flags, fixed-QPS ratios, QPS search brackets,
and the capacity profile matching the autoscaler's schema."""
import pytest

from sparse24.loadtest.capacity import capacity_profiles, fixed_qps_table, fixed_sla_table, max_qps_at_sla
from sparse24.loadtest.sweep import fill_qps


def _pts(dep, itls, qps=(1, 2, 4, 8), steady=None, replicas=1):
    steady = steady or [True] * len(itls)
    return [dict(deployment=dep, profile="chat", model="m", replicas=replicas, prompt_tokens=64, output_tokens=32,
                 target_qps=float(q), itl_p90_ms=float(v), itl_p50_ms=v * 0.8, itl_p99_ms=v * 1.5,
                 ttft_p50_ms=20.0, ttft_p90_ms=30.0, mean_concurrency=q * 0.5, steady=s)
            for q, v, s in zip(qps, itls, steady)]


def test_max_qps_is_interpolated_between_the_last_passing_and_first_failing_point():
    est = max_qps_at_sla(_pts("a", [10, 20, 40, 80]), "itl_p90_ms", 50.0)
    assert est.status == "interpolated" and est.max_qps == pytest.approx(4 + 4 * (10 / 40))
    assert est.passing_points == 3 and not est.too_few_points


def test_all_points_passing_is_a_lower_bound_and_none_passing_is_below_range():
    assert max_qps_at_sla(_pts("a", [1, 2, 3, 4]), "itl_p90_ms", 50).status == "extrapolated"
    est = max_qps_at_sla(_pts("a", [60, 70, 80, 90]), "itl_p90_ms", 50)
    assert est.status == "below_range" and est.max_qps == 0 and est.too_few_points


def test_saturation_before_the_sla_reports_the_last_steady_point():
    est = max_qps_at_sla(_pts("a", [10, 12, 14, 16], steady=[True, True, False, False]), "itl_p90_ms", 50)
    assert est.status == "saturation" and est.max_qps == 2.0


def test_fixed_sla_table_divides_by_replicas_and_fixed_qps_gives_speedups():
    pts = _pts("dense", [10, 20, 40, 80], replicas=2) + _pts("sparse", [5, 10, 20, 40], replicas=2)
    rows = {r["deployment"]: r for r in fixed_sla_table(pts, "itl_p90_ms", 50.0)}
    assert rows["sparse"]["status"] == "extrapolated" and rows["sparse"]["max_qps"] == 8.0
    assert rows["dense"]["status"] == "interpolated" and rows["dense"]["max_qps"] == pytest.approx(5.0)
    assert rows["dense"]["per_replica_qps"] == pytest.approx(rows["dense"]["max_qps"] / 2)
    speed = [r for r in fixed_qps_table(pts, "itl_p90_ms", baseline="dense") if r["deployment"] == "sparse"]
    assert [r["speedup"] for r in speed] == pytest.approx([2.0, 2.0, 2.0, 2.0])


def test_fill_qps_bisects_geometrically_inside_the_sla_and_saturation_brackets():
    pts = _pts("a", [10, 20, 60, 80], steady=[True, True, True, False])
    new = fill_qps(pts, "itl_p90_ms", 50.0, fill=1)
    assert new == pytest.approx([2.8284, 5.6569], abs=1e-3)  # sqrt(2*4), sqrt(4*8)


def test_capacity_profile_validates_against_the_autoscaler_model():
    pts = _pts("sparse", [5, 10, 20, 40], steady=[True, True, True, False], replicas=2)
    docs = capacity_profiles(pts, dict(machine="test box", created="2026-11-25T00:00:00Z", command="pytest"))
    doc = docs["sparse"]
    assert [p["qps"] for p in doc["workloads"][0]["points"]] == [0.5, 1.0, 2.0]  # steady only, per replica
    profile_mod = pytest.importorskip("sparse24.serve_app.autoscaler.profile")
    prof = profile_mod.CapacityProfile.model_validate(doc)
    curve = prof.workload("chat").curve()
    assert curve.itl_ms_at_qps(1.0, 90) == pytest.approx(10.0)


def test_auto_qps_ramps_until_saturation_then_fills_the_brackets():
    from sparse24.loadtest.sweep import AutoQps, SlaSpec, auto_points

    def measure(q):  # a server whose p90 ITL is 10 ms * qps and that saturates above 10 req/s
        return dict(target_qps=q, itl_p90_ms=10.0 * q, steady=q <= 10.0)

    pts = auto_points(AutoQps(start_qps=1, factor=2, max_qps=64, fill_points=1, max_points=8),
                      SlaSpec(metric="itl_p90_ms", target_ms=50), measure)
    qps = [p["target_qps"] for p in pts]
    # ramp 1..16 stops at the first unsteady point (16); then sqrt(4*8) fills the SLA bracket and
    # sqrt(8*16) the saturation bracket
    assert qps == pytest.approx([1, 2, 4, 5.6569, 8, 11.3137, 16])
