#!/usr/bin/env bash
# One device call: library build, GPU tests, tuning, benchmark. Run from the repo root on the GPU machine:
#   bash loadtest/kernel_bench/device_run.sh [build|tests|tune|bench|all ...]      (results under $OUT, default /tmp/s24out)
# The issue-17 benchmark in one call (kernels/README.md; prepare the carried paths with prepare_device.sh):
#   carry [".cache", ".vllm_ops", ".whl", "kernels/_build/peers"];  bash loadtest/kernel_bench/device_run.sh build tune bench
# build: compiles our library from .cache/cutlass_inc.tgz (16 jobs, ~2 min). tune: this device's table
# (<key>_sm90.json, Llama-3.1-8B shapes unless TUNE_ARGS says otherwise). bench: gemm_bench with every peer
# that can run: vLLM CUTLASS from .vllm_ops/ (or an installed vLLM), cuSPARSELt (peer library carried in
# kernels/_build/peers or built here from the image's nvidia-cusparselt-cu13), with the table just tuned.
# tests needs pytest (carry .whl with its wheels where the image lacks it).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/s24out}
mkdir -p "$OUT" /tmp/shim/sparse24
touch /tmp/shim/sparse24/__init__.py
for d in kernels serve_app loadtest; do ln -sfn "$PWD/$d" /tmp/shim/sparse24/$d; done  # tune/bench live in loadtest
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
# keep what the caller put on the path (e.g. the wheelhouse's site with vLLM and pydantic: the checkpoint format
# needs pydantic, which the bare image lacks)
export PYTHONPATH=/tmp/shim:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[[ -f .cache/COMMIT ]] && export SPARSE24_COMMIT=${SPARSE24_COMMIT:-$(cat .cache/COMMIT)}
LOG="$OUT/run.log"
steps=${*:-all}
{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv;
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  python3 -c "from sparse24.kernels import binding; print(binding.unavailable_reason() or binding.library_version())"; } 2>&1 | tee -a "$LOG"
TABLE=$(python3 -c "from sparse24.kernels import devices; from sparse24.kernels.tuning.table import table_name
print(table_name(*devices.current_name_and_capability()) or 'unknown_sm90.json')" 2>/dev/null || echo unknown_sm90.json)

peers() {  # the bench's peer columns: vLLM's kernel library and the cuSPARSELt peer (each skipped if absent)
  if [[ -f .vllm_ops/_C_stable_libtorch.abi3.so.xz && ! -f /tmp/vllm_ops/_C_stable_libtorch.abi3.so ]]; then
    mkdir -p /tmp/vllm_ops
    python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
      .vllm_ops/_C_stable_libtorch.abi3.so.xz /tmp/vllm_ops/_C_stable_libtorch.abi3.so
  fi
  if [[ -f /tmp/vllm_ops/_C_stable_libtorch.abi3.so ]]; then
    export SPARSE24_VLLM_C=/tmp/vllm_ops/_C_stable_libtorch.abi3.so
    export SPARSE24_VLLM_VERSION="$(cat .vllm_ops/VERSION 2>/dev/null || echo '?') ($(cat .vllm_ops/NOTE 2>/dev/null))"
  fi
  [[ -f kernels/_build/peers/libs24_cslt_peer.so ]] || python3 -m sparse24.kernels.peers.build 2>&1 | tail -3 | tee -a "$LOG"
  echo "peers: SPARSE24_VLLM_C=${SPARSE24_VLLM_C:-unset}; cuSPARSELt peer $(ls kernels/_build/peers/libs24_cslt_peer.so 2>/dev/null || echo missing)" | tee -a "$LOG"
}

for step in $steps; do
  if [[ $step == build ]]; then
    # compile on the device (16 cores) from the wheel's headers carried as .cache/cutlass_inc.tgz
    mkdir -p /tmp/cutlass_src && tar xzf .cache/cutlass_inc.tgz -C /tmp/cutlass_src
    SPARSE24_CUTLASS_SOURCE=/tmp/cutlass_src SPARSE24_CUTLASS_VERSION=${CUTLASS_VERSION:-4.2.0.0} \
      python3 -m sparse24.kernels.build --jobs 16 2>&1 | tail -20 | tee -a "$LOG" || exit 1
    cp kernels/_build/libsparse24_fp8.so "$OUT/" 2>/dev/null
  fi
  if [[ $step == tests || $step == all ]]; then
    peers
    timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -ra --tb=short tests/kernels/test_gpu_sparse_fp8.py tests/loadtest/kernel_bench/test_gpu_peers.py -p no:cacheprovider 2>&1 | tail -${TEST_TAIL:-80} | tee -a "$LOG"
  fi
  if [[ $step == tune || $step == all ]]; then
    timeout ${TUNE_TIMEOUT:-170} python3 -m sparse24.loadtest.kernel_bench.tune --out "$OUT/$TABLE" --raw "$OUT/tune_raw.json" \
      ${TUNE_ARGS:---shapes llama8b} 2>&1 | tee -a "$LOG"
  fi
  if [[ $step == bench || $step == all ]]; then
    peers
    [[ -f "$OUT/$TABLE" ]] && export SPARSE24_TUNING_TABLE="$OUT/$TABLE"
    timeout ${BENCH_TIMEOUT:-280} python3 -m sparse24.loadtest.kernel_bench.gemm_bench --out "$OUT/bench" ${BENCH_ARGS:-} 2>&1 | tee -a "$LOG"
  fi
done
