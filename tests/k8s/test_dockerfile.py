"""k8s/Dockerfile passes the static checks (BuildKit's parser + our rules), and each rule rejects a
deliberately broken Dockerfile. The CPU image is built and run for real in test_container.py (where a
Docker daemon answers); the GPU image's static checks here are all it gets on a CPU machine."""
from __future__ import annotations

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cd(tool):
    return tool("check_dockerfile")


@pytest.fixture(scope="module")
def text(cd):
    return cd.DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def pyproject():
    return (REPO / "pyproject.toml").read_text()


def test_committed_dockerfile_passes(cd, text, pyproject):
    assert cd.problems(text, pyproject) == []


def test_dockerignore_denies_by_default():
    ignore = (REPO / "k8s" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignore and "!kernels" in ignore and not any("model" in ln for ln in ignore if ln.startswith("!"))


@pytest.mark.parametrize("old, new, expected", [
    ("ARG CPU_BASE=python:3.11.14-slim-bookworm", "ARG CPU_BASE=python:latest", "not pinned"),
    ("FROM ${CUDA_RUNTIME} AS gpu", "FROM nvidia/cuda AS gpu", "not pinned"),
    ("USER ray\n# Non-editable", "USER root\n# Non-editable", "stage gpu: runs as root"),
    ("RUN python3.12 -m venv /opt/venv\n", "RUNN python3.12 -m venv /opt/venv\n", "unknown instruction 'RUNN'"),
    ("    && python kernels/build.py", "    && echo skip", "does not compile our kernels"),
    ("COPY --from=kernels /opt/sparse24/lib /opt/sparse24/lib", "", "does not copy the compiled kernels"),
    ('".[gpu,serve]"', '".[serve]"', "gpu extra"),
    ("ray.__version__ == '2.60.0'", "ray.__version__ == '2.59.0'", "does not assert ray==2.60.0"),
    ("COPY --chown=ray:ray loadtest loadtest\nCOPY --from",
     ("COPY --chown=ray:ray loadtest loadtest\n"
      "COPY weights/model.safetensors /opt/model.safetensors\nCOPY --from"), "copies model weights"),
    ("# last stage = default target\nFROM gpu\n", "", "(the default target) must be the gpu image"),
])
def test_broken_dockerfile_is_rejected(cd, text, pyproject, old, new, expected):
    assert old in text, f"test fixture out of date: {old!r} not in the Dockerfile"
    found = cd.problems(text.replace(old, new, 1), pyproject)
    assert any(expected in p for p in found), found
