"""The flows run one way: kernels <- serve_app <- loadtest. No module imports a folder above its own.

    kernels/    the kernel core, checkpoint format and model path (imports no other folder of ours)
    serve_app/  engine + serving + autoscaling (imports kernels)
    loadtest/   measurement: load tests and every benchmark (imports serve_app and kernels)

Read from the code's own imports (absolute `sparse24.*` and relative ones, resolved the way Python does),
so a new upward import fails here with the file and line that made it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["kernels", "serve_app", "loadtest"]  # bottom to top


def _package_of(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ["sparse24", *rel.parts]
    return parts[:-1]  # the package a module (or an __init__) resolves relative imports against


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted target) of every import of ours in one file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("sparse24.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package_of(path)
                base = pkg[: len(pkg) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("sparse24."):
                out.append((node.lineno, target))
    return out


def cross_folder_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, from-folder, to-folder) for every import from one of our folders into another."""
    rows = []
    for folder in LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, target in imports_of(path):
                to = target.split(".")[1]
                if to != folder:
                    rows.append((str(path.relative_to(ROOT)), line, folder, to))
    return rows


def test_relative_imports_resolve_to_real_modules():
    for folder in LAYERS:
        for path in (ROOT / folder).rglob("*.py"):
            for line, target in imports_of(path):
                parts = target.split(".")[1:]
                base = ROOT.joinpath(*parts)
                parent = ROOT.joinpath(*parts[:-1])
                ok = (base.with_suffix(".py").exists() or (base / "__init__.py").exists()
                      or parent.with_suffix(".py").exists())  # `from pkg.mod import name`
                assert ok, f"{path.relative_to(ROOT)}:{line} imports {target}, which is no module of ours"


def test_no_import_runs_back_up():
    rows = cross_folder_imports()
    assert rows, "no cross-folder imports found: the scan is broken"
    upward = [r for r in rows if LAYERS.index(r[3]) > LAYERS.index(r[2])]
    assert not upward, "imports that run back up: " + "; ".join(f"{f}:{n} ({a} -> {b})" for f, n, a, b in upward)


@pytest.mark.parametrize("folder", ["kernels"])
def test_the_kernel_core_imports_no_other_folder(folder):
    assert not [r for r in cross_folder_imports() if r[2] == folder]


if __name__ == "__main__":  # the arrows between folders, for the README: python tests/test_layers.py
    from collections import Counter

    for (a, b), n in sorted(Counter((r[2], r[3]) for r in cross_folder_imports()).items()):
        print(f"{a} -> {b}: {n} imports")


@pytest.mark.parametrize("package", ["sparse24.kernels", "sparse24.serve_app", "sparse24.loadtest",
                                     "sparse24.kernels.checkpoint", "sparse24.serve_app.autoscaler"])
def test_package_faces_export_the_names_they_list(package):
    # in a fresh interpreter: loadtest's names pull in locust, whose gevent patching must not run inside pytest
    import subprocess
    import sys

    code = (f"import importlib; m = importlib.import_module({package!r}); assert m.__all__; "
            "missing = [n for n in m.__all__ if getattr(m, n, None) is None]; assert not missing, missing")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
