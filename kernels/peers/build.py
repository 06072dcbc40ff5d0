"""Build the cuSPARSELt cached-plan peer, libs24_cslt_peer.so (kernels/peers/cusparselt_fp8.cu), a C-ABI library.

    python -m sparse24.kernels.peers.build [--out DIR] [--cusparselt ROOT]

Headers and libcusparseLt.so.0 come from the `nvidia-cusparselt-cu13` wheel (what torch's CUDA 13 builds
install; `pip download nvidia-cusparselt-cu13==0.8.1` + unzip on a machine without it), found as
ROOT/include/cusparseLt.h and ROOT/lib/libcusparseLt.so.0 with ROOT = --cusparselt, $SPARSE24_CUSPARSELT_ROOT
or <site-packages>/nvidia/cusparselt; cusparse.h (which cusparseLt.h includes) from the CUDA toolkit or the
`nvidia-cusparse` wheel (nvidia/cu13/include). One small translation unit (~20 s of nvcc); no CUTLASS, no libtorch.
At run time kernels/peers/cusparselt.py loads libcusparseLt.so.0 from the same places before this library.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from ..build import DEFAULT_OUT, GENCODE, find_nvcc

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "cusparselt_fp8.cu"
LIB_NAME = "libs24_cslt_peer.so"
DEFAULT_PEER_OUT = DEFAULT_OUT / "peers"
CSLT_SONAME = "libcusparseLt.so.0"


def cusparselt_roots() -> list[Path]:
    """Candidate cuSPARSELt roots (holding include/ and lib/), most specific first."""
    roots = []
    if os.environ.get("SPARSE24_CUSPARSELT_ROOT"):
        roots.append(Path(os.environ["SPARSE24_CUSPARSELT_ROOT"]))
    for entry in sys.path:
        if entry and Path(entry, "nvidia", "cusparselt").is_dir():
            roots.append(Path(entry, "nvidia", "cusparselt"))
    return roots


def find_cusparselt(root: Path | str | None = None) -> Path:
    """The cuSPARSELt root with both the header and the shared library; RuntimeError naming where it looked."""
    cands = [Path(root)] if root else cusparselt_roots()
    for c in cands:
        if (c / "include" / "cusparseLt.h").exists() and (c / "lib" / CSLT_SONAME).exists():
            return c
    raise RuntimeError(f"cuSPARSELt (include/cusparseLt.h + lib/{CSLT_SONAME}) not found in "
                       f"{[str(c) for c in cands] or 'sys.path nvidia/cusparselt'}; install nvidia-cusparselt-cu13 "
                       "or set SPARSE24_CUSPARSELT_ROOT")


def cusparse_include(nvcc: str) -> Path | None:
    """Folder with cusparse.h (cusparseLt.h includes it): the CUDA toolkit's include/, else the `nvidia-cusparse`
    wheel's nvidia/cu13/include (torch's CUDA 13 dependency), else $SPARSE24_CUSPARSE_INCLUDE."""
    cands = []
    if os.environ.get("SPARSE24_CUSPARSE_INCLUDE"):
        cands.append(Path(os.environ["SPARSE24_CUSPARSE_INCLUDE"]))
    cands.append(Path(nvcc).resolve().parent.parent / "include")
    for entry in sys.path:
        if entry:
            cands += [Path(entry, "nvidia", "cu13", "include"), Path(entry, "nvidia", "cusparse", "include")]
    for c in cands:
        if (c / "cusparse.h").exists():
            return c
    return None


def header_version(root: Path) -> str:
    text = (root / "include" / "cusparseLt.h").read_text(errors="replace")
    parts = []
    for key in ("MAJOR", "MINOR", "PATCH"):
        for line in text.splitlines():
            if line.startswith(f"#define CUSPARSELT_VER_{key} "):
                parts.append(line.split()[-1])
    return ".".join(parts) if len(parts) == 3 else "unknown"


def nvcc_command(nvcc: str, root: Path, out: Path) -> list[str]:
    """The one nvcc call that compiles and links the peer library (printed by --dry-run)."""
    inc = cusparse_include(nvcc)
    extra = [f"-I{inc}"] if inc is not None and inc != Path(nvcc).resolve().parent.parent / "include" else []
    return [nvcc, "-std=c++17", "-O3", "-DNDEBUG", GENCODE, "-Xcompiler", "-fPIC", "-shared", "-cudart", "static",
            f"-I{root / 'include'}", *extra, str(SOURCE), f"-L{root / 'lib'}", f"-l:{CSLT_SONAME}",
            "-Xlinker", f"-rpath={root / 'lib'}", "-o", str(out)]


def build(out: Path = DEFAULT_PEER_OUT, root: Path | str | None = None) -> Path:
    """Compile the peer library (cached by a hash of the source, the header and the command)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    root = find_cusparselt(root)
    out.mkdir(parents=True, exist_ok=True)
    lib = out / LIB_NAME
    cmd = nvcc_command(nvcc, root, Path(str(lib) + ".tmp"))
    h = hashlib.sha256(SOURCE.read_bytes() + (root / "include" / "cusparseLt.h").read_bytes() +
                       " ".join(cmd).encode()).hexdigest()[:16]
    stamp = out / f"{LIB_NAME}.{h}.stamp"
    if lib.exists() and stamp.exists():
        logger.info("%s up to date (cuSPARSELt %s headers)", lib, header_version(root))
        return lib
    logger.info("compiling %s against cuSPARSELt %s (%s)", SOURCE.name, header_version(root), root)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed:\n{proc.stderr[-4000:]}")
    os.replace(str(lib) + ".tmp", lib)
    for old in out.glob(f"{LIB_NAME}.*.stamp"):
        old.unlink()
    stamp.write_text(" ".join(cmd) + "\n")
    return lib


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_PEER_OUT, help="output folder (default kernels/_build/peers)")
    ap.add_argument("--cusparselt", default=None, help="cuSPARSELt root (include/, lib/)")
    ap.add_argument("--dry-run", action="store_true", help="print the nvcc command and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        if args.dry_run:
            print(" ".join(nvcc_command(find_nvcc() or "nvcc", find_cusparselt(args.cusparselt), args.out / LIB_NAME)))
            return 0
        path = build(args.out, args.cusparselt)
    except RuntimeError as e:
        print(f"peer build failed: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
