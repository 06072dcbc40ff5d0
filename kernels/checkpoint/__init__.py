"""2:4 sparse FP8 compressed-tensors checkpoints: the format's rules (format), write (compress), read (loader),
check (inspect); model sources incl. the built-in tiny models (model_source).

Names are imported lazily: `checkpoint.prune`, `checkpoint.bitmask` and `checkpoint.format` need only
torch/numpy/pydantic, so they work where compressed-tensors (needed to write the config JSON) is not
installed, e.g. on the GPU benchmark machine.
"""
from ..lazy_exports import lazy_exports

_EXPORTS = {
    "CompressSummary": "compress", "compress_checkpoint": "compress", "compress_tensor": "compress",
    "CheckpointError": "format", "SparseFp8Scheme": "format", "build_quantization_config": "config",
    "parse_quantization_config": "format", "storage_format": "format",
    "CheckpointReader": "loader", "SparseFp8Layer": "loader", "load_sparse_layers": "loader",
    "resolve_model_source": "model_source", "BUILTIN_SOURCES": "model_source",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
