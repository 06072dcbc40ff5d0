"""Capacity profile schema and curve math (the load-test output must validate against it)."""

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

import sparse24.serve_app.autoscaler as pkg
from sparse24.serve_app.autoscaler.profile import CapacityProfile

from .conftest import make_workload

PROFILES = Path(pkg.__file__).parent / "profiles"


def test_max_qps_interpolates_between_points(curve):
    assert math.isclose(curve.max_qps_at_itl(40.0, 90), 3.0)
    assert math.isclose(curve.max_qps_at_itl(30.0, 90), 2.5)
    assert math.isclose(curve.max_qps_at_itl(80.0, 90), 4.0)


def test_max_qps_is_zero_when_lightest_load_misses_the_target(curve):
    assert curve.max_qps_at_itl(9.0, 90) == 0.0


def test_max_qps_extrapolates_past_last_point_but_at_most_doubles(curve):
    # last segment slope 40 ms per req/s: 100 ms -> 4.5 req/s
    assert math.isclose(curve.max_qps_at_itl(100.0, 90), 4.5)
    assert math.isclose(curve.max_qps_at_itl(10_000.0, 90), 8.0)


def test_itl_at_qps_and_concurrency_interpolate(curve):
    assert math.isclose(curve.itl_ms_at_qps(2.5, 90), 30.0)
    assert math.isclose(curve.itl_ms_at_qps(0.1, 90), 10.0)  # flat below the first point
    c = curve.conc
    assert math.isclose(float(curve.itl_ms_at_concurrency((c[1] + c[2]) / 2, 90)[0]), 30.0)


def test_missing_concurrency_is_derived_by_littles_law():
    w = make_workload()
    p = w.points[0]  # qps 1, ttft 50 ms, itl_p50 8 ms, 256 output tokens
    assert math.isclose(p.concurrency, 1.0 * (50.0 + 255 * 8.0) / 1000.0)


def test_points_must_have_increasing_qps():
    with pytest.raises(ValidationError, match="strictly increasing qps"):
        make_workload(qps=(1.0, 3.0, 2.0, 4.0))


def test_unknown_fields_are_rejected(profile, tmp_path):
    doc = profile.model_dump(mode="json")
    doc["workloads"][0]["points"][0]["itl_p95_ms"] = 3.0
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="itl_p95_ms"):
        CapacityProfile.load(path)


def test_workload_lookup_by_name_and_by_nearest_lengths(profile):
    assert profile.workload("chat").name == "chat"
    with pytest.raises(KeyError, match="nope"):
        profile.workload("nope")
    assert profile.workload(None, 500, 250).name == "chat"


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.json")), ids=lambda p: p.name)
def test_committed_profiles_load_and_are_monotone(path):
    prof = CapacityProfile.load(path)
    for w in prof.workloads:
        c = w.curve()
        assert (c.itl[90] >= c.itl[50]).all() and (c.itl[99] >= c.itl[90]).all()
        assert (c.conc[1:] > c.conc[:-1]).all()


def test_loadtest_capacity_profile_output_validates():
    cap = pytest.importorskip("sparse24.loadtest.capacity")
    pts = [dict(deployment="sparse", profile="chat", target_qps=q, replicas=1, steady=True, mean_concurrency=q * 2,
                prompt_tokens=512, output_tokens=256, itl_p50_ms=5 + q, itl_p90_ms=6 + q, itl_p99_ms=8 + q,
                ttft_p50_ms=20.0, ttft_p90_ms=30.0, model="m") for q in (1.0, 2.0, 4.0)]
    docs = cap.capacity_profiles(pts, {"machine": "x", "created": "now", "command": "test"})
    prof = CapacityProfile.model_validate(docs["sparse"])
    assert prof.workload("chat").curve().max_qps_at_itl(8.0, 90) == pytest.approx(2.0)


def test_loadtest_writes_the_same_model_the_autoscaler_reads(tmp_path):
    cap = pytest.importorskip("sparse24.loadtest.capacity")
    pts = [dict(deployment="sparse", profile="chat", target_qps=q, replicas=1, steady=True, mean_concurrency=q * 2,
                prompt_tokens=512, output_tokens=256, itl_p50_ms=5 + q, itl_p90_ms=6 + q, itl_p99_ms=8 + q,
                ttft_p50_ms=20.0, ttft_p90_ms=30.0, model="m") for q in (1.0, 2.0)]
    written = cap.capacity_profile_models(pts, {"machine": "x", "created": "now", "command": "test"})["sparse"]
    assert isinstance(written, CapacityProfile)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(cap.capacity_profiles(pts, {"machine": "x", "created": "now", "command": "test"})["sparse"]))
    assert CapacityProfile.load(path) == written
