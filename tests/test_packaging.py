"""Packaging: our folders install under `sparse24`, never as a top-level `kernels` that transformers probes."""
import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_folder_is_listed_as_a_package():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    mapping = cfg["tool"]["setuptools"]["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found == listed, f"missing from pyproject packages: {found - listed}; stale: {listed - found}"


def _probe(cwd: Path) -> str:
    code = (
        "import importlib.util, transformers.utils as u, vllm;"
        "print(importlib.util.find_spec('kernels') is None, u.is_kernels_available(), "
        "'kernels' in __import__('sys').modules)"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=True).stdout.split()


def test_transformers_and_vllm_do_not_see_our_kernels_folder_from_elsewhere(tmp_path):
    assert importlib.util.find_spec("sparse24.kernels") is not None
    assert _probe(tmp_path) == ["True", "False", "False"]


def test_from_the_repo_root_transformers_still_reports_no_hub_kernels():
    # With the repo root on sys.path (e.g. `python -c` there), `kernels/` is findable by name, but it is
    # not the hub `kernels` package: transformers must report it unavailable, and importing it is harmless.
    spec_none, available, _ = _probe(ROOT)
    assert spec_none == "False" and available == "False"
