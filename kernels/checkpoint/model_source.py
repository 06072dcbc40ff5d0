"""Resolve a model `source` to a local directory, creating the built-in tiny models on first use.

Built-ins are deterministic (seeded weights, locally trained tokenizer), written once into the cache dir under
an exclusive file lock (several replicas may start together) and reused afterwards:
* `tiny-dense`: `sparse24.kernels.tiny_model.make_tiny_llama` (bf16 HF Llama, ~1.3 M parameters).
* `tiny-sparse24-fp8`: the same model pruned 2:4 and quantized to FP8 (`sparse24.kernels.checkpoint`).
Anything else is returned unchanged (a directory or a Hugging Face id that vLLM resolves itself).
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


logger = logging.getLogger(__name__)
# Built-in model sources: created deterministically on first use (the default model of deploy/config.yaml).
BUILTIN_SOURCES = ("tiny-dense", "tiny-sparse24-fp8")
_DONE_MARKER = ".sparse24-complete"


@contextmanager
def _exclusive(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _generator_key() -> str:
    """Hash of the code and data that generate the built-in models: a cached copy made by other code is rebuilt."""
    import hashlib

    root = Path(__file__).resolve().parents[1]  # kernels/
    files = [root / "tiny_model.py", root / "reference.py", root / "layout.py", root / "data" / "corpus.txt",
             *sorted(p for p in (root / "checkpoint").glob("*.py") if p.name != "model_source.py")]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _is_current(out: Path, key: str) -> bool:
    marker = out / _DONE_MARKER
    return marker.is_file() and marker.read_text().strip() == key


def _build_once(out: Path, build) -> Path:
    """Run build(tmp_dir) unless out is complete and current; publish atomically by rename."""
    key = _generator_key()
    if _is_current(out, key):
        return out
    with _exclusive(out.with_name(out.name + ".lock")):
        if _is_current(out, key):
            return out
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        (tmp / _DONE_MARKER).write_text(key + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        logger.info("created built-in model %s (generator %s)", out, key)
    return out


def _tiny_dense(cache: Path) -> Path:
    from ..tiny_model import make_tiny_llama

    return _build_once(cache / "tiny-dense", make_tiny_llama)


def _tiny_sparse(cache: Path) -> Path:
    dense = _tiny_dense(cache)

    def build(tmp: Path) -> None:
        from . import compress_checkpoint

        compress_checkpoint(dense, tmp, progress=False)

    return _build_once(cache / "tiny-sparse24-fp8", build)


def resolve_model_source(source: str, cache_dir: str) -> str:
    """Return a path (or HF id) vLLM can load for `source`; built-ins are created in cache_dir if absent."""
    cache = Path(os.path.expanduser(cache_dir))
    if source == "tiny-dense":
        return str(_tiny_dense(cache))
    if source == "tiny-sparse24-fp8":
        return str(_tiny_sparse(cache))
    assert source not in BUILTIN_SOURCES, source
    path = Path(os.path.expanduser(source))
    if path.is_absolute() or source.startswith("."):
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model source {source!r}: {path / 'config.json'} not found")
        return str(path)
    return source
