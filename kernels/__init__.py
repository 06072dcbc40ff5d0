"""2:4-sparse FP8 kernels and the numerics/format around them (import as `sparse24.kernels`).

Public names (imported lazily, on first use):

    pack_sparse_fp8_weight, sparse_fp8_linear, PackedSparseFp8Weight   the one op (linear.py)
    SparseFp8Linear                                                    an nn.Module around it (module.py)
    quantize_per_token_fp8, sparse_fp8_linear_reference, quantize_weight_per_channel_fp8
                                                                       the exact math (reference.py)
    SparseBackend, select_backend                                      which implementation runs (backend.py)
    make_tiny_llama, TinyLlamaSpec                                     the tiny-model maker (tiny_model.py)

Kept import-light on purpose: when the repository root is on sys.path, probes such as transformers'
`is_kernels_available()` may import this folder as a top-level `kernels`; that must cost nothing.
"""
from .lazy_exports import lazy_exports

_EXPORTS = {
    "pack_sparse_fp8_weight": "linear", "sparse_fp8_linear": "linear", "PackedSparseFp8Weight": "linear",
    "SparseFp8Linear": "module", "quantize_per_token_fp8": "reference",
    "sparse_fp8_linear_reference": "reference", "quantize_weight_per_channel_fp8": "reference", "SparseBackend": "backend", "select_backend": "backend",
    "make_tiny_llama": "tiny_model", "TinyLlamaSpec": "tiny_model",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
