"""ctypes binding of libs24_cslt_peer.so: cuSPARSELt 2:4 FP8 GEMM with everything but the launch done once.

    weight = CusparseLtFp8Weight(w_fp8, s_w)     # [N, K] e4m3 2:4 along K, s_w [N] or [N, 1] f32
    plan = weight.plan(xq)                       # descriptors + MatmulSearch on this M (once per M bucket)
    plan.matmul(xq, out)                         # launch only: out = s_w * (xq . W^T) (per-channel in-kernel)
    plan.matmul(xq, out, s_x)                    # + per-token s_x by one extra elementwise kernel

The library is $SPARSE24_CSLT_PEER_LIB or kernels/_build/peers/libs24_cslt_peer.so (kernels/peers/build.py);
libcusparseLt.so.0 is loaded first from the places build.py looks for it. `unavailable_reason()` says why it
cannot run here (no GPU, not built, cuSPARSELt missing), so benchmarks skip the column with that reason.
"""
from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import torch

from .build import CSLT_SONAME, DEFAULT_PEER_OUT, LIB_NAME, cusparselt_roots

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None
_DTYPES = {torch.bfloat16: 0, torch.float16: 1}


def library_path() -> Path:
    return Path(os.environ.get("SPARSE24_CSLT_PEER_LIB", DEFAULT_PEER_OUT / LIB_NAME))


def _preload_cusparselt() -> str | None:
    """dlopen libcusparseLt.so.0 globally so the peer library's dependency resolves; the path, or None if the
    system loader must find it (torch's CUDA build may have loaded it already)."""
    for root in cusparselt_roots():
        p = root / "lib" / CSLT_SONAME
        if p.exists():
            ctypes.CDLL(str(p), mode=ctypes.RTLD_GLOBAL)
            return str(p)
    return None


def _bind(lib: ctypes.CDLL) -> None:
    vp, i64, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    sig = {
        "s24p_cslt_last_error": ([], ctypes.c_char_p),
        "s24p_cslt_version": ([], c_int),
        "s24p_cslt_header_version": ([], c_int),
        "s24p_cslt_weight_create": ([vp, i64, i64, vp], vp),
        "s24p_cslt_weight_pruned": ([vp], c_int),
        "s24p_cslt_weight_bytes": ([vp], i64),
        "s24p_cslt_weight_destroy": ([vp], None),
        "s24p_cslt_plan_create": ([vp, i64, c_int, c_int, vp, vp, vp, c_int, vp], vp),
        "s24p_cslt_plan_info": ([vp] + [ctypes.POINTER(c_int)] * 4 + [ctypes.POINTER(i64)], c_int),
        "s24p_cslt_matmul": ([vp, vp, vp, vp, vp], c_int),
        "s24p_cslt_plan_destroy": ([vp], None),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res


def _load() -> ctypes.CDLL | None:
    global _lib, _error
    with _lock:
        if _lib is not None or _error is not None:
            return _lib
        path = library_path()
        if not path.exists():
            _error = f"cuSPARSELt peer {path} not built (python -m sparse24.kernels.peers.build)"
            return None
        try:
            _preload_cusparselt()
            lib = ctypes.CDLL(str(path))
            _bind(lib)
        except (OSError, AttributeError) as e:
            _error = f"cannot load {path}: {e}"
            return None
        _lib = lib
        return _lib


def unavailable_reason() -> str | None:
    """Why the cuSPARSELt peer cannot run on the current device; None if it can."""
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    if torch.cuda.get_device_capability() < (8, 0):
        return f"{torch.cuda.get_device_name()} has no sparse tensor cores for FP8"
    if _load() is None:
        return _error
    return None


def _lib_checked() -> ctypes.CDLL:
    lib = _load()
    if lib is None:
        raise RuntimeError(_error)
    return lib


def _err() -> str:
    return _lib_checked().s24p_cslt_last_error().decode()


def version() -> str:
    """cuSPARSELt version at run time and of the compiled-against header, e.g. '0.8.1 (header 0.8.1)'."""
    lib = _lib_checked()
    v = lib.s24p_cslt_version()
    if v < 0:
        raise RuntimeError(f"cuSPARSELt: {_err()}")
    h = lib.s24p_cslt_header_version()
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100} (header {h // 1000}.{h % 1000 // 100}.{h % 100})"


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


class CusparseLtFp8Plan:
    """One (N, K, M) plan: descriptors, searched algorithm and workspace cached; `matmul` only launches."""

    def __init__(self, weight: "CusparseLtFp8Weight", handle: int, m: int, out_dtype: torch.dtype,
                 d_col_major: bool):
        self.weight, self._h, self.m, self.out_dtype, self.d_col_major = weight, handle, m, out_dtype, d_col_major
        vals = [ctypes.c_int() for _ in range(4)]
        ws = ctypes.c_int64()
        _lib_checked().s24p_cslt_plan_info(handle, *[ctypes.byref(v) for v in vals], ctypes.byref(ws))
        self.alg_id, self.max_alg_id, self.split_k, self.split_k_mode = (v.value for v in vals)
        self.workspace_bytes = ws.value

    @property
    def out_shape(self) -> tuple[int, int]:
        """[M, N] (D column-major, our layout) or [N, M] (D row-major, where the first was refused)."""
        return (self.m, self.weight.n) if self.d_col_major else (self.weight.n, self.m)

    def new_out(self) -> torch.Tensor:
        return torch.empty(self.out_shape, dtype=self.out_dtype, device=self.weight.device)

    def info(self) -> dict:
        return {"alg_id": self.alg_id, "max_alg_id": self.max_alg_id, "split_k": self.split_k,
                "split_k_mode": self.split_k_mode, "workspace_bytes": self.workspace_bytes,
                "layout": "Y[M,N]" if self.d_col_major else "Y^T[N,M]"}

    def matmul(self, xq: torch.Tensor, out: torch.Tensor, s_x: torch.Tensor | None = None) -> torch.Tensor:
        """out = s_w * (xq . W^T), times s_x per token when given. xq: [M, K] e4m3 contiguous; s_x: [M, 1] f32."""
        if xq.shape != (self.m, self.weight.k) or xq.dtype != torch.float8_e4m3fn or not xq.is_contiguous():
            raise ValueError(f"xq must be contiguous e4m3 [{self.m}, {self.weight.k}], got {xq.dtype} {tuple(xq.shape)}")
        if out.shape != self.out_shape or out.dtype != self.out_dtype or not out.is_contiguous():
            raise ValueError(f"out must be contiguous {self.out_dtype} {self.out_shape}, got {out.dtype} {tuple(out.shape)}")
        if s_x is not None and (s_x.numel() != self.m or s_x.dtype != torch.float32 or not s_x.is_contiguous()):
            raise ValueError(f"s_x must be contiguous float32 with {self.m} elements, got {s_x.dtype} {tuple(s_x.shape)}")
        st = _lib_checked().s24p_cslt_matmul(self._h, xq.data_ptr(), out.data_ptr(),
                                             s_x.data_ptr() if s_x is not None else None, _stream(xq))
        if st != 0:
            raise RuntimeError(f"cuSPARSELt matmul (N={self.weight.n} K={self.weight.k} M={self.m}): {_err()}")
        return out

    def __del__(self):
        if getattr(self, "_h", None) and _lib is not None:
            _lib.s24p_cslt_plan_destroy(self._h)
            self._h = None


class CusparseLtFp8Weight:
    """A 2:4 FP8 weight [N, K] checked (pruned only if not 2:4) and compressed once by cuSPARSELt."""

    def __init__(self, w_fp8: torch.Tensor, s_w: torch.Tensor):
        if w_fp8.dim() != 2 or w_fp8.dtype != torch.float8_e4m3fn or not w_fp8.is_cuda:
            raise ValueError(f"weight must be a CUDA float8_e4m3fn [N, K], got {w_fp8.dtype} {tuple(w_fp8.shape)} "
                             f"on {w_fp8.device}")
        self.n, self.k = w_fp8.shape
        if s_w.numel() != self.n:
            raise ValueError(f"s_w must have N={self.n} elements, got {tuple(s_w.shape)}")
        self.device = w_fp8.device
        self.s_w = s_w.reshape(-1).float().contiguous()  # alpha vector: the plans keep its pointer
        w = w_fp8.contiguous()
        self._h = _lib_checked().s24p_cslt_weight_create(w.data_ptr(), self.n, self.k, _stream(w))
        if not self._h:
            raise RuntimeError(f"cuSPARSELt compress (N={self.n} K={self.k}): {_err()}")
        self.pruned = bool(_lib_checked().s24p_cslt_weight_pruned(self._h))
        self.compressed_bytes = int(_lib_checked().s24p_cslt_weight_bytes(self._h))

    def plan(self, xq: torch.Tensor, out_dtype: torch.dtype = torch.bfloat16, search_iters: int = 10,
             layouts: tuple[bool, ...] = (True, False)) -> CusparseLtFp8Plan:
        """Plan for xq's M (xq's values drive the algorithm search). Tries D column-major (Y [M, N]) first,
        then row-major (Y^T [N, M]) if cuSPARSELt refuses the first."""
        if out_dtype not in _DTYPES:
            raise ValueError(f"out_dtype must be bfloat16 or float16, got {out_dtype}")
        m = xq.shape[0]
        errors = []
        for col in layouts:
            out = torch.empty((m, self.n) if col else (self.n, m), dtype=out_dtype, device=self.device)
            h = _lib_checked().s24p_cslt_plan_create(self._h, m, _DTYPES[out_dtype], int(col), self.s_w.data_ptr(),
                                                     xq.contiguous().data_ptr(), out.data_ptr(), search_iters,
                                                     _stream(xq))
            if h:
                return CusparseLtFp8Plan(self, h, m, out_dtype, col)
            errors.append(f"{'Y[M,N]' if col else 'Y^T[N,M]'}: {_err()}")
        raise RuntimeError(f"cuSPARSELt plan (N={self.n} K={self.k} M={m}): " + "; ".join(errors))

    def __del__(self):
        if getattr(self, "_h", None) and _lib is not None:
            _lib.s24p_cslt_weight_destroy(self._h)
            self._h = None
