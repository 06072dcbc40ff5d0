"""ITL-SLA autoscaler for Ray Serve: a pure control law, its Ray Serve policy adapter, and a
trace-replay simulator that compares it with Ray Serve's default policy.

- ``law.decide``: (Observation, ControlLawConfig, CapacityCurve, state) -> Decision (pure).
- ``fleet.fleet_observation``: per-replica stats -> Observation (the Ray policy and the simulator both use it).
- ``policy.ItlSlaPolicy``: Ray Serve class policy (``autoscaling_config.policy``) calling ``decide``.
- ``stats``: names + helper for the replicas' ``record_autoscaling_stats``.
- ``profile.CapacityProfile``: the capacity profile model (loadtest/capacity.py builds it to write profiles).
- ``ray_rules`` / ``ray_llm_rules``: Ray's default policy and Ray Serve LLM's TTFT policy, for the simulator.
- ``sim.simulate`` / ``report`` / ``cli``: ``sparse24-autoscale simulate``.
"""

from .config import ControlLawConfig, ItlSla, ItlSlaPolicyConfig
from .fleet import fleet_observation
from .law import Decision, Observation, decide
from .profile import CapacityCurve, CapacityPoint, CapacityProfile, WorkloadCapacity

POLICY_IMPORT_PATH = "sparse24.serve_app.autoscaler.policy:ItlSlaPolicy"

__all__ = [
    "ControlLawConfig", "ItlSla", "ItlSlaPolicyConfig", "Decision", "Observation", "decide", "fleet_observation",
    "CapacityCurve", "CapacityPoint", "CapacityProfile", "WorkloadCapacity", "POLICY_IMPORT_PATH",
]
