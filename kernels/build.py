"""Build libsparse24_fp8.so (CUTLASS sm90a 2:4-sparse FP8 GEMM + quantizer + compressor), a C-ABI library.

    python -m sparse24.kernels.build [--out DIR] [--configs 0,2,4] [--jobs N] [--check]

The library does not link libtorch: kernels/ops.py loads it with ctypes, so one build serves any torch.
CUTLASS headers come from the `nvidia-cutlass` wheel (pinned in pyproject's `build` extra); nvcc from PATH or
$CUDA_HOME/bin. Each GEMM configuration of csrc/gemm_configs.def is its own translation unit (~1-2 min of
nvcc each), compiled in parallel; objects are cached under the output folder by a hash of their inputs, so a
rebuild only recompiles what changed. `--check` compiles without linking (CI compile check).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent / "csrc"
DEFAULT_OUT = Path(__file__).resolve().parent / "_build"
LIB_NAME = "libsparse24_fp8.so"
GENCODE = "-gencode=arch=compute_90a,code=sm_90a"
NVCC_FLAGS = ["-std=c++17", "-O3", "-DNDEBUG", GENCODE, "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC",
              "-Xcompiler", "-Wno-psabi"]
# Producer warps wait for the previous kernel (griddepcontrol.wait), so a config built with this may be
# launched with PDL. Not for stream-K configs: CUTLASS 4.2's stream-K scheduler does not compile with it.
GDC_FLAG = "-DCUTLASS_ENABLE_GDC_FOR_SM90"
SMALL_SOURCES = ["api.cu", "quant.cu", "compress.cu", "cutlass_compress.cu"]
CI_SOURCES = ["api.cu", "quant.cu", "compress.cu"]  # the compile check skips the verification-only TU
HEADERS = ["s24_api.h", "s24_internal.h", "s24_gemm.cuh", "gemm_configs.def"]


@dataclass(frozen=True)
class GemmConfig:
    id: int
    name: str
    tile_m: int
    tile_n: int
    tile_k: int
    cluster_m: int
    cluster_n: int
    schedule: str
    stages: int = 0


def gemm_configs() -> list[GemmConfig]:
    """Parse csrc/gemm_configs.def (the single list of compiled GEMM configurations)."""
    pat = re.compile(r"^S24_CFG\((\d+),\s*(\w+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\w+),\s*(\d+)\)",
                     re.M)
    out = []
    for m in pat.finditer((CSRC / "gemm_configs.def").read_text()):
        out.append(GemmConfig(int(m[1]), m[2], int(m[3]), int(m[4]), int(m[5]), int(m[6]), int(m[7]), m[8],
                              int(m[9])))
    return out


def cutlass_include_dirs() -> list[Path]:
    """Include folders of the nvidia-cutlass wheel (cutlass_library/source/{include,tools/util/include}).

    $SPARSE24_CUTLASS_SOURCE overrides the folder holding include/ and tools/util/include (a copy of the
    wheel's headers, e.g. on a machine where the wheel is not installed)."""
    if os.environ.get("SPARSE24_CUTLASS_SOURCE"):
        root = Path(os.environ["SPARSE24_CUTLASS_SOURCE"])
    else:
        try:
            import cutlass_library
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise RuntimeError("the `nvidia-cutlass` wheel is not installed: pip install 'sparse24-fp8-serve[build]'") from e
        root = Path(cutlass_library.__file__).resolve().parent / "source"
    dirs = [root / "include", root / "tools" / "util" / "include"]
    missing = [d for d in dirs if not (d / "cutlass").is_dir()]
    if missing:
        raise RuntimeError(f"CUTLASS headers not found under {missing}")
    return dirs


def cutlass_version() -> str:
    if os.environ.get("SPARSE24_CUTLASS_VERSION"):
        return os.environ["SPARSE24_CUTLASS_VERSION"]
    try:
        from importlib.metadata import version

        return version("nvidia-cutlass")
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def find_nvcc() -> str | None:
    cand = shutil.which("nvcc")
    if cand:
        return cand
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").exists():
            return str(Path(home) / "bin" / "nvcc")
    return None


def _hash_inputs(source: str, extra: list[str]) -> str:
    """Key of one translation unit: its source, the shared headers, flags and compiler."""
    h = hashlib.sha256()
    for name in [source, *HEADERS]:
        h.update(name.encode())
        h.update((CSRC / name).read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:16]


def _compile(nvcc: str, src: Path, obj: Path, defines: list[str], includes: list[Path]) -> tuple[Path, float]:
    if obj.exists():
        return obj, 0.0
    t0 = time.time()
    cmd = [nvcc, *NVCC_FLAGS, *defines, *[f"-I{d}" for d in includes], f"-I{CSRC}", "-c", str(src),
           "-o", str(obj) + ".tmp"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln][:5]
        raise RuntimeError(f"nvcc failed for {src.name} {' '.join(defines)}:\n" + "\n".join(e[:600] for e in errors))
    os.replace(str(obj) + ".tmp", obj)
    return obj, time.time() - t0


def build(out: Path = DEFAULT_OUT, configs: list[int] | None = None, jobs: int | None = None,
          link: bool = True, small_sources: list[str] | None = None, strict: bool = False) -> Path:
    """Compile (and link) the library; returns the .so path (or the object folder with link=False)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    includes = cutlass_include_dirs()
    all_cfgs = gemm_configs()
    chosen = [c for c in all_cfgs if configs is None or c.id in configs]
    if configs is not None and len(chosen) != len(set(configs)):
        raise ValueError(f"unknown config ids in {configs}; known: {[c.id for c in all_cfgs]}")
    version = f"sparse24 cutlass={cutlass_version()} requested={','.join(c.name for c in chosen)}"
    env = NVCC_FLAGS + [str(d) for d in includes] + [
        subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout]
    objdir = out / "obj"
    objdir.mkdir(parents=True, exist_ok=True)
    tasks = []
    for src in small_sources or SMALL_SOURCES:
        defines = [f'-DS24_VERSION="{version}"'] if src == "api.cu" else []
        tasks.append((CSRC / src, objdir / f"{Path(src).stem}-{_hash_inputs(src, env + defines)}.o", defines))
    for c in chosen:
        defines = [f"-DS24_CFG_ID={c.id}"] + ([] if c.schedule == "COOP_SK" else [GDC_FLAG])
        tasks.append((CSRC / "gemm_instance.cu", objdir / f"gemm_{c.name}-{_hash_inputs('gemm_instance.cu', env + defines)}.o",
                      defines))
    jobs = jobs or max(1, os.cpu_count() or 1)
    logger.info("building %d translation units with %d jobs (nvcc %s)", len(tasks), jobs, nvcc)
    t0 = time.time()
    failed = []
    with cf.ThreadPoolExecutor(jobs) as pool:
        futs = {pool.submit(_compile, nvcc, *t[:2], t[2], includes): t for t in tasks}
        for i, fut in enumerate(cf.as_completed(futs), 1):
            try:
                obj, secs = fut.result()
            except RuntimeError as e:
                failed.append(futs[fut])
                logger.error("[%d/%d] FAILED %s", i, len(tasks), e)
                continue
            logger.info("[%d/%d] %s %s", i, len(tasks), obj.name, f"{secs:.0f}s" if secs else "(cached)")
    # A GEMM config that does not compile is left out (the dispatcher only uses compiled configs);
    # any other translation unit failing is fatal. --strict (or link=False, the CI check) fails on any.
    if failed and (strict or not link or any("S24_CFG_ID" not in " ".join(t[2]) for t in failed)):
        raise RuntimeError(f"{len(failed)} translation unit(s) failed: {[t[1].name for t in failed]}")
    if not link:
        return objdir
    lib = out / LIB_NAME
    ordered = [t[1] for t in tasks if t not in failed]
    cmd = [nvcc, GENCODE, "-shared", "-cudart", "static", "-o", str(lib) + ".tmp", *map(str, ordered)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"link failed:\n{proc.stderr[-4000:]}")
    os.replace(str(lib) + ".tmp", lib)
    logger.info("built %s in %.0fs", lib, time.time() - t0)
    return lib


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default kernels/_build)")
    ap.add_argument("--configs", default=None, help="comma-separated config ids (default: all)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel nvcc processes (default: CPU count)")
    ap.add_argument("--check", action="store_true", help="compile only, no link (CI compile check)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    configs = [int(c) for c in args.configs.split(",")] if args.configs else None
    try:
        path = build(args.out, configs, args.jobs, link=not args.check)
    except (RuntimeError, ValueError) as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
