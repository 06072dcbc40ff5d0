"""Package faces that name their public API but import it only on first use (stdlib only).

    __getattr__, __all__ = lazy_exports(__name__, {"Name": "module", ...})

Why lazy: importing a package must stay cheap (vLLM imports our plugin package in every process; transformers
may probe this folder as a top-level `kernels`), while `from sparse24.kernels import pack_sparse_fp8_weight`
still works.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module `__getattr__` that loads `name` from `package.<exports[name]>`, and the sorted `__all__`."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{exports[name]}", package), name)

    return __getattr__, sorted(exports)
