"""Resuming a sweep: the points an earlier run wrote to OUT/points.json, when measured under the same load
settings, are kept and not measured again (a sweep on a lent GPU may span several calls or sessions)."""
from __future__ import annotations

import json
from pathlib import Path

# settings that change what a point means: points measured under other values cannot be mixed in
SAME_LOAD_SETTINGS = ("profile_scale", "duration_s", "warmup_s", "burstiness", "api", "seed", "max_in_flight")


def point_key(deployment: str, profile: str, qps: float) -> tuple[str, str, float]:
    return deployment, profile, round(float(qps), 6)


class MeasuredPoints:
    """Points already measured, by (deployment, profile, QPS)."""

    def __init__(self, points: list[dict]):
        self.points = list(points)
        self._by_key = {point_key(p["deployment"], p["profile"], p["target_qps"]): p for p in self.points}

    @classmethod
    def load(cls, out_dir: str | Path, config: dict) -> "MeasuredPoints":
        """The points in out_dir/points.json (none if absent); ValueError naming the settings that differ."""
        f = Path(out_dir) / "points.json"
        if not f.exists():
            return cls([])
        doc = json.loads(f.read_text())
        old = doc.get("metadata", {}).get("config", {})
        diff = {k: (old.get(k), config.get(k)) for k in SAME_LOAD_SETTINGS if old.get(k) != config.get(k)}
        if diff:
            raise ValueError(f"--resume: {f} was measured with other settings (earlier, now) {diff}; "
                             "use another --out")
        return cls(doc.get("points", []))

    def get(self, deployment: str, profile: str, qps: float) -> dict | None:
        return self._by_key.get(point_key(deployment, profile, qps))

    def has_all(self, deployment: str, profile: str, qps: list[float] | None) -> bool:
        return bool(qps) and all(self.get(deployment, profile, q) is not None for q in qps)

    def __len__(self) -> int:
        return len(self.points)
