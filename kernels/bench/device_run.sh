#!/usr/bin/env bash
# One device call: GPU tests, tuning, benchmark. Run from the repo root on the GPU machine with the library
# built here and carried (kernels/_build) plus pytest wheels (.whl):
#   bash kernels/bench/device_run.sh [tests|tune|bench|all ...]      (results under $OUT, default /tmp/s24out)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/s24out}
mkdir -p "$OUT" /tmp/shim/sparse24
touch /tmp/shim/sparse24/__init__.py
ln -sfn "$PWD/kernels" /tmp/shim/sparse24/kernels
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/shim:/tmp/site PYTHONUNBUFFERED=1
LOG="$OUT/run.log"
steps=${*:-all}
{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv;
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  python3 -c "from sparse24.kernels import ops; print(ops.unavailable_reason() or ops.library_version())"; } 2>&1 | tee -a "$LOG"
for step in $steps; do
  if [[ $step == build ]]; then
    # compile on the device (16 cores) from the wheel's headers carried as .cache/cutlass_inc.tgz
    mkdir -p /tmp/cutlass_src && tar xzf .cache/cutlass_inc.tgz -C /tmp/cutlass_src
    SPARSE24_CUTLASS_SOURCE=/tmp/cutlass_src SPARSE24_CUTLASS_VERSION=${CUTLASS_VERSION:-4.2.0.0} \
      python3 -m sparse24.kernels.build --jobs 16 2>&1 | tail -20 | tee -a "$LOG" || exit 1
    cp kernels/_build/libsparse24_fp8.so "$OUT/" 2>/dev/null
  fi
  if [[ $step == tests || $step == all ]]; then
    timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -ra --tb=short tests/kernels/test_gpu_sparse_fp8.py -p no:cacheprovider 2>&1 | tail -${TEST_TAIL:-80} | tee -a "$LOG"
  fi
  if [[ $step == tune || $step == all ]]; then
    timeout ${TUNE_TIMEOUT:-240} python3 -m sparse24.kernels.tuning.tune --out "$OUT/h100_sm90.json" --raw "$OUT/tune_raw.json" \
      ${TUNE_ARGS:-} 2>&1 | tee -a "$LOG"
  fi
  if [[ $step == bench || $step == all ]]; then
    [[ -f "$OUT/h100_sm90.json" ]] && export SPARSE24_TUNING_TABLE="$OUT/h100_sm90.json"
    timeout ${BENCH_TIMEOUT:-240} python3 -m sparse24.kernels.bench.gemm_bench --out "$OUT/bench" ${BENCH_ARGS:-} 2>&1 | tee -a "$LOG"
  fi
done
