"""ctypes binding of libsparse24_fp8.so (C ABI, no libtorch dependency): load, availability, raw calls.

The library (built by `python -m sparse24.kernels.build`) is loaded from settings().library
($SPARSE24_LIB or kernels/_build/libsparse24_fp8.so). Without a Hopper GPU or the built library, importing
still works and `unavailable_reason()` says why. The raw calls here run on their inputs' device and that
device's current stream; validation and dispatch live in ops.py, weight preparation in weights.py.
"""
from __future__ import annotations

import ctypes
import threading

import torch

from .settings import settings

DTYPE_CODE = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}
OUT_DTYPES = (torch.bfloat16, torch.float16)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_error: str | None = None
_configs: dict[str, int] = {}
_config_info: dict[int, dict] = {}
_sm_count: dict[int, int] = {}
_ws_cache: dict[tuple, int] = {}


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


def load() -> ctypes.CDLL | None:
    """The loaded library, or None (then `load_error()` says why). Tried once per process."""
    global _lib, _load_error
    with _lock:
        if _lib is not None or _load_error is not None:
            return _lib
        path = settings().library
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


def load_error() -> str | None:
    return _load_error


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
    if load() is None:
        return _load_error
    return None


def library() -> ctypes.CDLL:
    lib = load()
    if lib is None:
        raise BackendUnavailable(_load_error or "library not loaded")
    return lib


def library_version() -> str:
    return library().s24_version().decode()


def config_names() -> dict[str, int]:
    """Compiled GEMM configs: name -> id."""
    library()
    return dict(_configs)


def config_id(name: str) -> int | None:
    """The id of a compiled config, None if this build lacks it (no copy: on the per-call path)."""
    return _configs.get(name)


def config_info(name: str) -> dict:
    return dict(_config_info[config_names()[name]])


def compiled_configs() -> list[dict]:
    """Every compiled config's tile/cluster description (empty before the library is loaded)."""
    return [dict(v) for v in _config_info.values()]


def check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"sparse24 {what} failed: {library().s24_last_error().decode()}")


def stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def _sms(device: torch.device) -> int:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _sm_count:
        _sm_count[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _sm_count[idx]


class on_device:
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


def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token FP8 quantization of x [M, K] in one kernel -> (xq fp8 [M, K], s_x f32 [M, 1])."""
    m, k = x.shape
    xq = torch.empty((m, k), dtype=torch.float8_e4m3fn, device=x.device)
    s_x = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    if m == 0:
        return xq, s_x
    with on_device(x.device):
        check(library().s24_quantize_per_token(x.data_ptr(), DTYPE_CODE[x.dtype], m, k, x.stride(0),
                                               xq.data_ptr(), s_x.data_ptr(), stream(x.device)), "quantize")
    return xq, s_x


def sparse_gemm(xq, s_x, values, e_meta, s_w, bias, out_dtype, config: int, mode: int, splits: int,
                pdl: bool = False) -> torch.Tensor:
    """Y = s_x * s_w * (xq . W^T) + bias with one compiled config id and decomposition mode."""
    m, k = xq.shape
    n = values.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=xq.device)
    if m == 0:
        return out
    lib = library()
    dev = xq.device
    with on_device(dev):
        sms = _sms(dev)
        key = (config, m, n, k, mode, splits, sms)
        ws = _ws_cache.get(key)
        if ws is None:
            ws = lib.s24_gemm_workspace_size(config, m, n, k, mode, splits, sms)
            if ws < 0:
                check(1, "workspace query")
            if len(_ws_cache) > 4096:
                _ws_cache.clear()
            _ws_cache[key] = ws
        workspace = torch.empty(max(int(ws), 1), dtype=torch.uint8, device=dev)
        check(lib.s24_gemm(config, DTYPE_CODE[out_dtype], values.data_ptr(), e_meta.data_ptr(), xq.data_ptr(),
                           s_w.data_ptr(), s_x.data_ptr(), bias.data_ptr() if bias is not None else None,
                           out.data_ptr(), m, n, k, mode, splits, sms, int(pdl and settings().pdl),
                           workspace.data_ptr(), int(ws), stream(dev)), f"GEMM (config {config}, M={m} N={n} K={k})")
    return out


def dense_gemm(xq, s_x, dense_t, s_w, bias, out_dtype) -> torch.Tensor:
    """cuBLASLt fp8 with row-wise scales (the dispatcher's fallback where it is faster than sparse)."""
    y = torch._scaled_mm(xq, dense_t, scale_a=s_x, scale_b=s_w.reshape(1, -1), out_dtype=out_dtype,
                         use_fast_accum=True)
    return y + bias if bias is not None else y
