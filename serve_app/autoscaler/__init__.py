"""ITL-SLA autoscaler for Ray Serve: a pure control law, its Ray Serve policy adapter, and a
trace-replay simulator that compares it with Ray Serve's default policy.

- ``law.decide``: (Observation, ControlLawConfig, CapacityCurve, state) -> Decision (pure).
- ``policy.ItlSlaPolicy``: Ray Serve class policy (``autoscaling_config.policy``) calling ``decide``.
- ``stats``: names + helper for the replicas' ``record_autoscaling_stats``.
- ``profile.CapacityProfile``: capacity profile JSON schema (written by sparse24-loadtest).
- ``sim.simulate`` / ``report`` / ``cli``: ``sparse24-autoscale simulate``.
"""

from .config import ControlLawConfig, ItlSla, ItlSlaPolicyConfig
from .law import Decision, Observation, decide
from .profile import CapacityCurve, CapacityPoint, CapacityProfile, WorkloadCapacity

POLICY_IMPORT_PATH = "sparse24.serve_app.autoscaler.policy:ItlSlaPolicy"

__all__ = [
    "ControlLawConfig", "ItlSla", "ItlSlaPolicyConfig", "Decision", "Observation", "decide",
    "CapacityCurve", "CapacityPoint", "CapacityProfile", "WorkloadCapacity", "POLICY_IMPORT_PATH",
]
