"""Open-loop load tests, capacity curves and the benchmarks of every flow (import as `sparse24.loadtest`).

Public names (imported lazily):

    SweepConfig, run_sweep           a QPS sweep from its YAML config (sweep.py, execute.py)
    max_qps_at_sla, fixed_sla_table  capacity at an SLA from measured points (capacity.py)
    RequestSample                    one measured request (metrics.py)

Benchmarks: kernel_bench/ (GEMM, tuning), model_bench/ (8B-shaped model), engine_bench/ (vLLM engine),
serve_bench/ (serving overhead, recovery); results under results/<study>/.
"""
from ..kernels.lazy_exports import lazy_exports

_EXPORTS = {
    "SweepConfig": "sweep", "run_sweep": "execute", "max_qps_at_sla": "capacity", "fixed_sla_table": "capacity",
    "RequestSample": "metrics",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
