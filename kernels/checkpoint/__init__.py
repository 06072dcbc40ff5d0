"""2:4 sparse FP8 compressed-tensors checkpoints: write (compress), read (loader), check (inspect)."""
from .compress import CompressSummary, compress_checkpoint, compress_tensor
from .config import CheckpointError, SparseFp8Scheme, build_quantization_config, parse_quantization_config
from .loader import CheckpointReader, SparseFp8Layer, load_sparse_layers

__all__ = [
    "CheckpointError", "CheckpointReader", "CompressSummary", "SparseFp8Layer", "SparseFp8Scheme",
    "build_quantization_config", "compress_checkpoint", "compress_tensor", "load_sparse_layers",
    "parse_quantization_config",
]
