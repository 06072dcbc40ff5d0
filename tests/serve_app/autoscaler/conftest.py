import pytest

from sparse24.serve_app.autoscaler.config import ControlLawConfig, ItlSla
from sparse24.serve_app.autoscaler.profile import CapacityPoint, CapacityProfile, WorkloadCapacity


def make_workload(itl_p90=(10.0, 20.0, 40.0, 80.0), qps=(1.0, 2.0, 3.0, 4.0)) -> WorkloadCapacity:
    return WorkloadCapacity(name="chat", prompt_tokens=512, output_tokens=256, points=[
        CapacityPoint(qps=q, itl_p50_ms=i * 0.8, itl_p90_ms=i, itl_p99_ms=i * 1.5, ttft_p50_ms=50.0) for q, i in zip(qps, itl_p90)])


@pytest.fixture
def curve():
    """cap at p90 <= 40 ms: 3 req/s per replica; at 30 ms: 2.5 req/s."""
    return make_workload().curve()


@pytest.fixture
def law_cfg():
    return ControlLawConfig(sla=ItlSla(itl_percentile=90, itl_target_ms=50.0), headroom=0.2, spare_capacity=0.0,
                            upscale_stable_s=2.0, downscale_stable_s=60.0, breach_stable_s=3.0, settle_s=15.0,
                            downscale_margin=0.1)


@pytest.fixture
def profile():
    return CapacityProfile(deployment="d", model="m", machine="x", created="now", source="test", workloads=[make_workload()])
