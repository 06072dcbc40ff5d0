"""Start a local Ray for tests and benchmarks, surviving a slow raylet start."""
from __future__ import annotations

import ray

# Ray gives its raylet a fixed 30 s to register; on a busy 2-core box that is not always enough.
_ATTEMPTS = 3


def init_local_ray(**init_kwargs) -> None:
    """ray.init(num_cpus=4 on 127.0.0.1, no dashboard, **init_kwargs), retried on start-up failure."""
    kwargs = dict(num_cpus=4, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="WARNING")
    kwargs.update(init_kwargs)
    for attempt in range(_ATTEMPTS):
        try:
            ray.init(**kwargs)
            return
        except Exception:
            ray.shutdown()
            if attempt == _ATTEMPTS - 1:
                raise
