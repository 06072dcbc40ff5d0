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
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } 2>&1 | tee -a "$LOG"
for step in $steps; do
  if [[ $step == tests || $step == all ]]; then
    timeout 300 python3 -m pytest -q -ra tests/kernels/test_gpu_sparse_fp8.py -p no:cacheprovider 2>&1 | tail -60 | tee -a "$LOG"
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
