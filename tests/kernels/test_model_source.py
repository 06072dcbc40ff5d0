"""Built-in model sources are created once, reused, and rebuilt when the generating code changed."""
from sparse24.kernels.checkpoint import model_source


def test_builtin_is_built_once_then_rebuilt_when_its_generator_key_differs(tmp_path):
    path = model_source.resolve_model_source("tiny-dense", str(tmp_path))
    marker = tmp_path / "tiny-dense" / model_source._DONE_MARKER
    assert marker.read_text().strip() == model_source._generator_key()
    weights = tmp_path / "tiny-dense" / "model.safetensors"
    first = weights.stat().st_mtime_ns
    assert model_source.resolve_model_source("tiny-dense", str(tmp_path)) == path
    assert weights.stat().st_mtime_ns == first  # reused, not rebuilt
    marker.write_text("ok\n")  # as written by an older generator
    model_source.resolve_model_source("tiny-dense", str(tmp_path))
    assert marker.read_text().strip() == model_source._generator_key()
    assert weights.stat().st_mtime_ns != first
