"""GPU backend of the sparse-FP8 linear: ctypes bindings of libsparse24_fp8.so + torch custom ops.

The library (built by `python -m sparse24.kernels.build`, C ABI, no libtorch dependency) is loaded from
$SPARSE24_LIB or kernels/_build/libsparse24_fp8.so. Ops (registered under the `sparse24::` namespace with
fake implementations, so torch.compile and CUDA graphs can trace them):

    quantize_per_token(x)                      -> (xq fp8 [M,K], s_x f32 [M,1])   (one fused kernel)
    sparse_gemm(xq, s_x, values, e, s_w, bias, out_dtype, config, mode, splits) -> [M,N]
    sparse_fp8_linear(x, values, e, s_w, bias, dense_t, out_dtype) -> [M,N]    (quant + dispatched GEMM)

Every op runs on its inputs' device and that device's current stream. Without a Hopper GPU or the built
library, importing still works; `gpu_backend_available()` is False and `unavailable_reason()` says why
(logged once), and sparse24.kernels.linear keeps using the CPU reference.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import layout
from .tuning import table as tuning

logger = logging.getLogger(__name__)

LIB_PATH = Path(__file__).resolve().parent / "_build" / "libsparse24_fp8.so"
_DTYPE_CODE = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}
OUT_DTYPES = (torch.bfloat16, torch.float16)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_error: str | None = None
_logged = False
_configs: dict[str, int] = {}
_config_info: dict[int, dict] = {}
_sm_count: dict[int, int] = {}
_ws_cache: dict[tuple, int] = {}
_PDL = os.environ.get("SPARSE24_PDL", "1") != "0"  # programmatic dependent launch of the GEMM after the quantizer


class BackendUnavailable(RuntimeError):
    """The CUTLASS backend cannot run here (no Hopper GPU or no built library)."""


def _bind(lib: ctypes.CDLL) -> None:
    c_int, c_i64, c_vp, c_char_p = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p, ctypes.c_char_p
    sig = {
        "s24_version": ([], c_char_p),
        "s24_last_error": ([], c_char_p),
        "s24_num_configs": ([], c_int),
        "s24_config_info": ([c_int, ctypes.POINTER(c_char_p)] + [ctypes.POINTER(c_int)] * 5, c_int),
        "s24_gemm_workspace_size": ([c_int] * 7, c_i64),
        "s24_gemm": ([c_int, c_int] + [c_vp] * 7 + [c_int] * 7 + [c_vp, c_i64, c_vp], c_int),
        "s24_quantize_per_token": ([c_vp, c_int, c_i64, c_i64, c_i64, c_vp, c_vp, c_vp], c_int),
        "s24_compress_2of4": ([c_vp, c_i64, c_i64, c_vp, c_vp, c_vp, c_vp], c_int),
        "s24_meta_reordered_bytes": ([c_i64, c_i64], c_i64),
        "s24_reorder_meta": ([c_vp, c_i64, c_i64, c_vp, c_vp], c_int),
        "s24_cutlass_compress": ([c_vp, c_i64, c_i64, c_vp, c_vp, c_vp], c_int),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res


def _load() -> ctypes.CDLL | None:
    global _lib, _load_error
    with _lock:
        if _lib is not None or _load_error is not None:
            return _lib
        path = Path(os.environ.get("SPARSE24_LIB", LIB_PATH))
        if not path.exists():
            _load_error = f"library {path} not built (run: python -m sparse24.kernels.build)"
            return None
        try:
            lib = ctypes.CDLL(str(path))
            _bind(lib)
        except (OSError, AttributeError) as e:
            _load_error = f"cannot load {path}: {e}"
            return None
        for i in range(lib.s24_num_configs()):
            name = ctypes.c_char_p()
            vals = [ctypes.c_int() for _ in range(5)]
            if lib.s24_config_info(i, ctypes.byref(name), *[ctypes.byref(v) for v in vals]) == 0:
                cname = name.value.decode()
                _configs[cname] = i
                _config_info[i] = dict(zip(("tile_m", "tile_n", "tile_k", "cluster_m", "stream_k"),
                                           (v.value for v in vals)), name=cname)
        _lib = lib
        return _lib


def unavailable_reason(device: torch.device | str | None = None) -> str | None:
    """Why the CUTLASS backend cannot run on `device` (default: current CUDA device); None if it can."""
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    dev = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
    if dev.type != "cuda":
        return f"device {dev} is not a CUDA device"
    cap = torch.cuda.get_device_capability(dev)
    if cap != (9, 0):
        return f"{torch.cuda.get_device_name(dev)} has compute capability {cap}; the kernels are built for sm_90a"
    if _load() is None:
        return _load_error
    return None


def gpu_backend_available(device: torch.device | str | None = None) -> bool:
    """True if the CUTLASS sm90a kernels can run on `device`. Logs the reason once when they cannot."""
    global _logged
    reason = unavailable_reason(device)
    if reason is not None and not _logged:
        _logged = True
        logger.warning("sparse24: CUTLASS sparse-FP8 backend unavailable (%s); using the CPU reference path", reason)
    return reason is None


def library() -> ctypes.CDLL:
    lib = _load()
    if lib is None:
        raise BackendUnavailable(_load_error or "library not loaded")
    return lib


def library_version() -> str:
    return library().s24_version().decode()


def config_names() -> dict[str, int]:
    """Compiled GEMM configs: name -> id."""
    library()
    return dict(_configs)


def config_info(name: str) -> dict:
    return dict(_config_info[config_names()[name]])


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"sparse24 {what} failed: {library().s24_last_error().decode()}")


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def _sms(device: torch.device) -> int:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _sm_count:
        _sm_count[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _sm_count[idx]


class _on_device:
    """Make `device` current for the C calls (cheap no-op when it already is)."""

    def __init__(self, device: torch.device):
        self.idx = device.index if device.index is not None else torch.cuda.current_device()
        self.prev = None

    def __enter__(self):
        cur = torch.cuda.current_device()
        if cur != self.idx:
            self.prev = cur
            torch.cuda.set_device(self.idx)

    def __exit__(self, *exc):
        if self.prev is not None:
            torch.cuda.set_device(self.prev)


# ----------------------------------------------------------------------------------------------- raw calls
def _quantize_impl(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m, k = x.shape
    xq = torch.empty((m, k), dtype=torch.float8_e4m3fn, device=x.device)
    s_x = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    if m == 0:
        return xq, s_x
    with _on_device(x.device):
        _check(library().s24_quantize_per_token(x.data_ptr(), _DTYPE_CODE[x.dtype], m, k, x.stride(0),
                                                xq.data_ptr(), s_x.data_ptr(), _stream(x.device)), "quantize")
    return xq, s_x


def _gemm_impl(xq, s_x, values, e_meta, s_w, bias, out_dtype, config, mode, splits, pdl=False) -> torch.Tensor:
    m, k = xq.shape
    n = values.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=xq.device)
    if m == 0:
        return out
    lib = library()
    dev = xq.device
    with _on_device(dev):
        sms = _sms(dev)
        key = (config, m, n, k, mode, splits, sms)
        ws = _ws_cache.get(key)
        if ws is None:
            ws = lib.s24_gemm_workspace_size(config, m, n, k, mode, splits, sms)
            if ws < 0:
                _check(1, "workspace query")
            if len(_ws_cache) > 4096:
                _ws_cache.clear()
            _ws_cache[key] = ws
        workspace = torch.empty(max(int(ws), 1), dtype=torch.uint8, device=dev)
        _check(lib.s24_gemm(config, _DTYPE_CODE[out_dtype], values.data_ptr(), e_meta.data_ptr(), xq.data_ptr(),
                            s_w.data_ptr(), s_x.data_ptr(), bias.data_ptr() if bias is not None else None,
                            out.data_ptr(), m, n, k, mode, splits, sms, int(pdl and _PDL), workspace.data_ptr(), int(ws),
                            _stream(dev)), f"GEMM (config {config}, M={m} N={n} K={k})")
    return out


def _dense_impl(xq, s_x, dense_t, s_w, bias, out_dtype) -> torch.Tensor:
    """cuBLASLt fp8 with row-wise scales (the dispatcher's fallback where it is faster than sparse)."""
    y = torch._scaled_mm(xq, dense_t, scale_a=s_x, scale_b=s_w.reshape(1, -1), out_dtype=out_dtype,
                         use_fast_accum=True)
    return y + bias if bias is not None else y


# ----------------------------------------------------------------------------------------------- custom ops
@torch.library.custom_op("sparse24::quantize_per_token", mutates_args=())
def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token FP8 quantization (reference.quantize_per_token_fp8) in one kernel."""
    return _quantize_impl(x)


@quantize_per_token.register_fake
def _(x):
    return (x.new_empty(x.shape, dtype=torch.float8_e4m3fn), x.new_empty((x.shape[0], 1), dtype=torch.float32))


@torch.library.custom_op("sparse24::sparse_gemm", mutates_args=())
def sparse_gemm(xq: torch.Tensor, s_x: torch.Tensor, values: torch.Tensor, e_meta: torch.Tensor,
                s_w: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype, config: int, mode: int,
                splits: int) -> torch.Tensor:
    """Y = s_x * s_w * (xq . W^T) + bias with one explicit GEMM config (benchmarks / tuning)."""
    return _gemm_impl(xq, s_x, values, e_meta, s_w, bias, out_dtype, config, mode, splits)


@sparse_gemm.register_fake
def _(xq, s_x, values, e_meta, s_w, bias, out_dtype, config, mode, splits):
    return xq.new_empty((xq.shape[0], values.shape[0]), dtype=out_dtype)


def _dispatch(m: int, n: int, k: int, out_dtype: torch.dtype, have_dense: bool) -> tuning.Choice:
    c = tuning.load_table(os.environ.get("SPARSE24_TUNING_TABLE")).lookup(m, n, k)
    if c.backend == "dense" and not (have_dense and out_dtype == torch.bfloat16):
        c = tuning.default_choice(m)
    if c.backend == "sparse" and c.config not in _configs:
        c = tuning.default_choice(m)
        if c.config not in _configs:  # a partial build: the compiled config whose token tile fits M best
            fit = sorted(_config_info.values(), key=lambda i: (i["tile_n"] < min(m, 128), abs(i["tile_n"] - m)))
            c = tuning.Choice(config=fit[0]["name"])
    return c


def _linear_impl(x, values, e_meta, s_w, bias, dense_t, out_dtype) -> torch.Tensor:
    m, k = x.shape
    n = values.shape[0]
    xq, s_x = _quantize_impl(x)
    if m == 0:
        return x.new_empty((0, n), dtype=out_dtype)
    c = _dispatch(m, n, k, out_dtype, dense_t is not None)
    if c.backend == "dense":
        return _dense_impl(xq, s_x, dense_t, s_w, bias, out_dtype)
    # PDL: the GEMM's prologue overlaps the tail of the quantization kernel it follows
    return _gemm_impl(xq, s_x, values, e_meta, s_w, bias, out_dtype, _configs[c.config], tuning.MODES[c.mode],
                      c.splits, pdl=True)


@torch.library.custom_op("sparse24::sparse_fp8_linear", mutates_args=())
def sparse_fp8_linear_op(x: torch.Tensor, values: torch.Tensor, e_meta: torch.Tensor, s_w: torch.Tensor,
                         bias: torch.Tensor | None, dense_t: torch.Tensor | None,
                         out_dtype: torch.dtype) -> torch.Tensor:
    """Fused per-token quantization + the GEMM the tuning table picks for (M, N, K)."""
    return _linear_impl(x, values, e_meta, s_w, bias, dense_t, out_dtype)


@sparse_fp8_linear_op.register_fake
def _(x, values, e_meta, s_w, bias, dense_t, out_dtype):
    return x.new_empty((x.shape[0], values.shape[0]), dtype=out_dtype)


# ----------------------------------------------------------------------------------------------- weights
@dataclass
class GpuWeightState:
    """What the CUTLASS path needs besides the logical values: reordered metadata, optional dense copy."""

    a_values: torch.Tensor  # [N, K/2] fp8 values the GEMM reads (the logical values unless metadata came from CUTLASS)
    e_meta: torch.Tensor  # uint8, CUTLASS sm90 fp8 E layout
    s_w: torch.Tensor  # [N] f32 contiguous
    dense_t: torch.Tensor | None = None  # [K, N] column-major fp8 view of the dense weight (dense fallback)


def compress_2of4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GPU compressor: dense 2:4 fp8 W [N, K] -> (values [N, K/2], meta [N, K/8]) exactly as
    layout.compress_2of4. Raises layout.Not2of4Error for a group of 4 with more than 2 non-zeros."""
    if w.dim() != 2 or w.dtype != torch.float8_e4m3fn:
        raise ValueError(f"weight must be float8_e4m3fn [N, K], got {w.dtype} {tuple(w.shape)}")
    if not w.is_cuda:
        raise ValueError(f"GPU compressor needs a CUDA tensor, got device {w.device}")
    if not w.is_contiguous():
        raise ValueError("weight must be contiguous (row-major [N, K])")
    n, k = w.shape
    if k % 8:
        raise ValueError(f"K={k} is not a multiple of 8 (whole metadata bytes)")
    values = torch.empty((n, k // 2), dtype=torch.float8_e4m3fn, device=w.device)
    meta = torch.empty((n, k // 8), dtype=torch.uint8, device=w.device)
    bad = torch.zeros(1, dtype=torch.int32, device=w.device)
    if n == 0 or k == 0:
        return values, meta
    with _on_device(w.device):
        _check(library().s24_compress_2of4(w.data_ptr(), n, k, values.data_ptr(), meta.data_ptr(), bad.data_ptr(),
                                           _stream(w.device)), "compress")
    nbad = int(bad.item())
    if nbad:
        raise layout.Not2of4Error(f"{nbad} groups of 4 along K hold more than 2 non-zeros")
    return values, meta


def reorder_meta(meta: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Logical meta [N, K/8] -> CUTLASS sm90 E layout (flat uint8)."""
    if meta.shape != (n, k // 8) or meta.dtype != torch.uint8 or not meta.is_contiguous():
        raise ValueError(f"meta must be contiguous uint8 [{n}, {k // 8}], got {meta.dtype} {tuple(meta.shape)}")
    lib = library()
    e = torch.empty(int(lib.s24_meta_reordered_bytes(n, k)), dtype=torch.uint8, device=meta.device)
    with _on_device(meta.device):
        _check(lib.s24_reorder_meta(meta.data_ptr(), n, k, e.data_ptr(), _stream(meta.device)), "reorder_meta")
    return e


def cutlass_compress(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CUTLASS's StructuredSparseCompressor on dense W (verification of reorder_meta only)."""
    n, k = w.shape
    lib = library()
    values = torch.zeros((n, k // 2), dtype=torch.uint8, device=w.device)
    e = torch.zeros(int(lib.s24_meta_reordered_bytes(n, k)), dtype=torch.uint8, device=w.device)
    with _on_device(w.device):
        _check(lib.s24_cutlass_compress(w.contiguous().data_ptr(), n, k, values.data_ptr(), e.data_ptr(),
                                        _stream(w.device)), "cutlass_compress")
    return values, e


def prepare_weight(packed):
    """Turn a reference-packed weight (values/meta on a CUDA device) into the CUTLASS backend's form."""
    values, meta = packed.values, packed.meta
    if not values.is_cuda:
        raise ValueError(f"prepare_weight needs CUDA tensors, got {values.device}")
    reason = unavailable_reason(values.device)
    if reason:
        raise BackendUnavailable(reason)
    n, k = packed.n, packed.k
    layout.check_k_alignment(k)
    if n % 8:
        raise ValueError(f"N={n} must be a multiple of 8 for the CUTLASS kernels (16-byte output rows)")
    values = values.contiguous()
    if os.environ.get("SPARSE24_META", "reorder") == "cutlass":
        # CUTLASS's own compressor on the dense weight (its padding rule for groups with < 2 non-zeros differs
        # from layout.py's, so it brings its own values)
        a_values, e = cutlass_compress(layout.decompress_2of4(values, meta))
        a_values = a_values.view(torch.float8_e4m3fn)
    else:
        a_values, e = values, reorder_meta(meta.contiguous(), n, k)
    s_w = packed.scale.reshape(-1).float().contiguous()
    dense_t = None
    if tuning.load_table(os.environ.get("SPARSE24_TUNING_TABLE")).needs_dense(n, k):
        dense_t = layout.decompress_2of4(values, meta).t()  # [K, N] column-major, what _scaled_mm wants
    packed.values = values
    packed.gpu_state = GpuWeightState(a_values, e, s_w, dense_t)
    packed.backend = "cutlass"
    packed.dense_reference = None
    return packed


def sparse_fp8_linear(x2d: torch.Tensor, packed, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """Validated entry point used by sparse24.kernels.linear for backend 'cutlass'. x2d is [M, K]."""
    st: GpuWeightState = packed.gpu_state
    if x2d.dim() != 2:
        raise ValueError(f"expected x of shape [M, K], got {tuple(x2d.shape)}")
    if x2d.dtype not in _DTYPE_CODE:
        raise TypeError(f"x must be bfloat16, float16 or float32, got {x2d.dtype}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be bfloat16 or float16 on the GPU path, got {out_dtype}")
    if x2d.device != packed.values.device:
        raise ValueError(f"device mismatch: x on {x2d.device}, weight on {packed.values.device}")
    if x2d.shape[1] != packed.k:
        raise ValueError(f"input has K={x2d.shape[1]} but the weight expects K={packed.k}")
    if x2d.shape[0] and x2d.stride(1) != 1:
        raise ValueError(f"x must have unit stride along K (got strides {x2d.stride()}); call .contiguous()")
    if bias is not None:
        if bias.numel() != packed.n:
            raise ValueError(f"bias must have N={packed.n} elements, got shape {tuple(bias.shape)}")
        if bias.device != x2d.device:
            raise ValueError(f"device mismatch: bias on {bias.device}, x on {x2d.device}")
        bias = bias.reshape(-1).to(out_dtype).contiguous()
    if torch.compiler.is_compiling():
        return sparse_fp8_linear_op(x2d, st.a_values, st.e_meta, st.s_w, bias, st.dense_t, out_dtype)
    # eager: skip the custom-op dispatcher (tens of us of host time per call); same function
    return _linear_impl(x2d, st.a_values, st.e_meta, st.s_w, bias, st.dense_t, out_dtype)
