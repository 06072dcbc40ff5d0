"""Static checks of k8s/Dockerfile (no Docker daemon in CI): pinned bases, non-root, kernels compiled
for sm_90a at build time, the GPU extra installed, Ray pinned like pyproject, no weights baked in."""
from __future__ import annotations

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "k8s" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not buf:
            continue
        buf += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            if buf.strip():
                op, _, args = buf.strip().partition(" ")
                out.append((op.upper(), args.strip()))
            buf = ""
    return out


@pytest.fixture(scope="module")
def ins():
    return instructions(DOCKERFILE.read_text())


def _stages(ins):
    stages, current = {}, None
    for op, args in ins:
        if op == "FROM":
            parts = args.split()
            current = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"final:{parts[0]}"
            stages[current] = []
        elif current:
            stages[current].append((op, args))
    return stages


def test_base_images_are_pinned_to_exact_versions(ins):
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in ins if op == "ARG" and "=" in a}
    images = [v for k, v in args.items() if k in ("CUDA_DEVEL", "CUDA_RUNTIME", "CPU_BASE")]
    assert len(images) == 3
    for image in images:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), image


def test_runtime_stages_run_as_non_root(ins):
    stages = _stages(ins)
    for name in ("gpu", "cpu"):
        users = [a for op, a in stages[name] if op == "USER"]
        assert users and users[-1] not in ("root", "0"), name
    assert list(stages)[-1].startswith("final:gpu")   # default target is the GPU image


def test_kernels_are_compiled_for_sm90a_at_build_time(ins):
    stages = _stages(ins)
    runs = " ".join(a for op, a in stages["kernels"] if op == "RUN")
    assert "kernels/build.py" in runs and "['optional-dependencies']['build']" in runs
    build_py = (REPO / "kernels" / "build.py")
    if build_py.is_file():
        assert "sm_90a" in build_py.read_text()
    gpu = stages["gpu"]
    assert any(op == "COPY" and "--from=kernels" in a for op, a in gpu)
    env = " ".join(a for op, a in gpu if op == "ENV")
    assert "SPARSE24_LIB=/opt/sparse24/lib/libsparse24_fp8.so" in env


def test_gpu_image_installs_the_gpu_extra_with_the_pinned_ray(ins):
    gpu_runs = " ".join(a for op, a in _stages(ins)["gpu"] if op == "RUN")
    assert '".[gpu,serve]"' in gpu_runs
    pin = re.search(r'"ray\[serve\]==([0-9.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert f"ray.__version__ == '{pin}'" in gpu_runs


def test_no_model_weights_are_copied_into_the_image(ins):
    copies = [a for op, a in ins if op in ("COPY", "ADD")]
    assert not any(re.search(r"\.(safetensors|bin|gguf|pt)\b|models?/", a) for a in copies), copies
    ignore = (REPO / "k8s" / "Dockerfile.dockerignore").read_text()
    assert ignore.splitlines()[1] == "**"   # deny by default, allow-list the package sources
