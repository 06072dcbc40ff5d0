"""Shared fixtures: the deterministic tiny model and its 2:4 FP8 checkpoints, built once per test session."""
import pytest


@pytest.fixture(scope="session")
def tiny_dense_dir(tmp_path_factory):
    from sparse24.kernels.tiny_model import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-dense")


@pytest.fixture(scope="session")
def tiny_sparse_dir(tiny_dense_dir, tmp_path_factory):
    """The tiny model compressed to 2:4 FP8, format sparse-24-bitmask."""
    from sparse24.kernels.checkpoint import compress_checkpoint

    out = tmp_path_factory.mktemp("models") / "tiny-sparse-bitmask"
    compress_checkpoint(tiny_dense_dir, out, "sparse-24-bitmask", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_sparse_dense_format_dir(tiny_dense_dir, tmp_path_factory):
    """The tiny model compressed to 2:4 FP8, format dense (zeros stored densely, as the RedHatAI models)."""
    from sparse24.kernels.checkpoint import compress_checkpoint

    out = tmp_path_factory.mktemp("models") / "tiny-sparse-dense"
    compress_checkpoint(tiny_dense_dir, out, "dense", progress=False)
    return out
