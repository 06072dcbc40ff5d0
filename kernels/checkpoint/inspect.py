"""`sparse24 inspect DIR`: per-layer 2:4 conformance, scale ranges and format of a checkpoint."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .format import CheckpointError
from .loader import CheckpointReader


@dataclass
class LayerReport:
    name: str
    shape: tuple[int, int] | None
    conforms_2of4: bool
    scale_min: float | None = None
    scale_max: float | None = None
    problem: str | None = None


@dataclass
class CheckpointReport:
    path: str
    sparsity_format: str
    weight_strategy: str
    activations: str
    layers: list[LayerReport]

    @property
    def ok(self) -> bool:
        return all(layer.conforms_2of4 for layer in self.layers)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def render(self) -> str:
        lines = [f"{self.path}: format {self.sparsity_format}, weights fp8 per-{self.weight_strategy}, "
                 f"activations fp8 {self.activations}, {len(self.layers)} 2:4 layers"]
        width = max(len(r.name) for r in self.layers)
        for r in self.layers:
            if r.problem:
                lines.append(f"  {r.name:<{width}}  FAIL  {r.problem}")
            else:
                lines.append(f"  {r.name:<{width}}  ok    [{r.shape[0]:>6} x {r.shape[1]:>6}]  "
                             f"scale {r.scale_min:.3e} .. {r.scale_max:.3e}")
        bad = sum(not r.conforms_2of4 for r in self.layers)
        lines.append("all layers conform to 2:4" if not bad else f"{bad} layer(s) FAIL")
        return "\n".join(lines)


def inspect_checkpoint(model_dir: str | Path) -> CheckpointReport:
    """Check every layer; a bad layer is reported (not raised) so one run lists all problems.

    Config-level problems (missing files, unknown format) still raise CheckpointError.
    """
    reader = CheckpointReader(model_dir)
    reports = []
    for name in reader.layer_names:
        try:
            layer = reader.load(name)
        except CheckpointError as e:
            reports.append(LayerReport(name, None, False, problem=str(e)))
            continue
        reports.append(LayerReport(name, (layer.n, layer.k), True, float(layer.scale.min()), float(layer.scale.max())))
    s = reader.scheme
    activations = "dynamic per-token" if s.activation_dynamic else "static per-tensor"
    return CheckpointReport(str(model_dir), s.sparsity_format, s.weight_strategy, activations, reports)
