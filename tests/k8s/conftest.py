"""k8s/tools/*.py are plain scripts (k8s/ is not a package of ours): load them by path."""
from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TOOLS = REPO / "k8s" / "tools"
OVERLAYS = REPO / "k8s" / "overlays"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes, not seconds (builds or runs a container image)")


def load_tool(name: str):
    """Import k8s/tools/<name>.py (its sibling imports resolve through k8s/tools on sys.path)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def vm():
    return load_tool("validate_manifests")


@pytest.fixture(scope="session")
def rendered(vm):
    """{overlay name: rendered objects}, rendered once per session (kustomize via kubectl)."""
    return {p.name: vm.render(p) for p in sorted(OVERLAYS.iterdir()) if (p / "kustomization.yaml").is_file()}


@pytest.fixture(scope="session")
def tool():
    """tool("name") -> the k8s/tools/name.py module."""
    return load_tool
