"""The benchmark model set: one dense model and its three FP8 checkpoints, from the same weights (`sparse24 model-set`).

    OUT/bf16             dense bf16 (random weights for the 8B shape; the deterministic tiny model for `tiny`)
    OUT/fp8              dense FP8-dynamic compressed-tensors (RedHatAI `*-FP8-dynamic` layout; vLLM's own FP8 path)
    OUT/sparse24         2:4 sparse FP8, format sparse-24-bitmask (our plugin, our kernels)
    OUT/sparse24-dense   2:4 sparse FP8, format dense (the published RedHatAI Sparse-Llama layout)
    OUT/model_set.json   what was made, how long each step took, sizes on disk

Random weights carry no quality signal: this set exists for speed and numerics, never for accuracy claims.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

VARIANTS = ("bf16", "fp8", "sparse24", "sparse24-dense")
SHAPES = ("tiny", "llama-3.1-8b")


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def make_model_set(out_root: str | Path, shape: str = "llama-3.1-8b", seed: int = 0, device: str = "auto",
                   variants: tuple[str, ...] = VARIANTS, progress: bool = True, layers: int | None = None) -> dict:
    """Write the model set under out_root; returns (and writes) the manifest. Existing variant folders are redone."""
    from .checkpoint import compress_checkpoint
    from .checkpoint.compress import resolve_device
    from .tiny_model import TinyLlamaSpec, make_tiny_llama, write_llama_8b_config, write_random_weights

    if layers is not None and (shape == "tiny" or not 1 <= layers <= 32):
        raise ValueError(f"--layers {layers}: only for the 8B shape, 1..32")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; expected some of {VARIANTS}")
    dev = resolve_device(device)
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    dense = root / "bf16"
    steps: dict[str, dict] = {}

    t0 = time.perf_counter()
    if shape == "tiny":
        make_tiny_llama(dense, TinyLlamaSpec(seed=seed))
    else:
        write_llama_8b_config(dense, num_hidden_layers=layers)
        write_random_weights(dense, seed=seed, device=dev.type, progress=progress)
    steps["bf16"] = {"seconds": round(time.perf_counter() - t0, 1), "bytes": _dir_bytes(dense)}

    plans = {"fp8": dict(scheme="fp8-dynamic"), "sparse24": dict(sparsity_format="sparse-24-bitmask"),
             "sparse24-dense": dict(sparsity_format="dense")}
    for name, kwargs in plans.items():
        if name not in variants:
            continue
        t0 = time.perf_counter()
        compress_checkpoint(dense, root / name, progress=progress, device=str(dev), **kwargs)
        steps[name] = {"seconds": round(time.perf_counter() - t0, 1), "bytes": _dir_bytes(root / name)}
    manifest = {
        "shape": shape, "layers": layers, "seed": seed, "device": str(dev), "variants": {k: str(root / k) for k in steps},
        "steps": steps, "total_seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        "note": "random weights: no quality signal; for speed and numerics only" if shape != "tiny" else
                "deterministic tiny random model: no quality signal",
    }
    (root / "model_set.json").write_text(json.dumps(manifest, indent=2))
    return manifest
