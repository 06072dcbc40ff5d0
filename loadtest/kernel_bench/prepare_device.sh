#!/usr/bin/env bash
# CPU side, before the one device call of `device_run.sh build tune bench` (kernels/README.md): lays out the
# ignored paths that call carries, and prints their sizes and the carry list.
#   .cache/cutlass_inc.tgz     CUTLASS headers of the nvidia-cutlass wheel (the device builds our library)
#   .cache/COMMIT              the commit measured (the device's copy has no .git)
#   .vllm_ops/                 vLLM 0.26.0's own kernel library (vllm/_C_stable_libtorch.abi3.so from the
#                              wheel in $WHEELHOUSE, xz): the vLLM CUTLASS column without installing vLLM
#   .whl/                      pydantic (+ its deps) for the device's Python 3.12: the checkpoint format imports it
#                              and the bare image lacks it (device_run.sh installs .whl/*.whl into /tmp/site)
#   kernels/_build/peers/      the cuSPARSELt peer (libs24_cslt_peer.so), if the cuSPARSELt headers are here
#                              (else the device builds it from its own nvidia-cusparselt-cu13 wheel)
# Usage: bash loadtest/kernel_bench/prepare_device.sh      env: WHEELHOUSE (default ../shared/gpu-wheelhouse),
#        PRUNE=1|0 (zero vLLM's non-sm_90 cubins; default: only if the carry would exceed LIMIT_MIB=62), PY
set -euo pipefail
cd "$(dirname "$0")/../.."
WH=${WHEELHOUSE:-../shared/gpu-wheelhouse}
PY=${PY:-python3}
LIMIT_MIB=${LIMIT_MIB:-62}
mkdir -p .cache .vllm_ops
{ git describe --always --dirty --abbrev=7 2>/dev/null || echo unknown; } > .cache/COMMIT
if [ ! -f .cache/cutlass_inc.tgz ]; then
  src=$($PY -c "import cutlass_library,os;print(os.path.dirname(cutlass_library.__file__))")/source
  tar czf .cache/cutlass_inc.tgz -C "$src" include/cutlass include/cute tools/util/include
fi

if [ ! -f .vllm_ops/VERSION ]; then
  T=$(mktemp -d)
  (cd "$WH" && sha256sum -c --quiet SHA256SUMS)
  cat "$WH"/vw-bundle.tar.xz.part0 "$WH"/vw-bundle.tar.xz.part1 | xz -d | tar xf - -C "$T" --wildcards 'vllm-*.whl'
  whl=$(ls "$T"/vllm-*.whl)
  (cd "$T" && unzip -q "$whl" vllm/_C_stable_libtorch.abi3.so)
  so="$T/vllm/_C_stable_libtorch.abi3.so"
  tree_mib=$(( ($(git ls-files -z | xargs -0 cat 2>/dev/null | wc -c) + $(du -sb .cache | cut -f1)) / 1048576 ))
  xz -9 -T2 -c "$so" > .vllm_ops/_C_stable_libtorch.abi3.so.xz
  full_mib=$(( $(stat -c %s .vllm_ops/_C_stable_libtorch.abi3.so.xz) / 1048576 ))
  if [ "${PRUNE:-auto}" = 1 ] || { [ "${PRUNE:-auto}" = auto ] && [ $((tree_mib + full_mib + 2)) -gt "$LIMIT_MIB" ]; }; then
    # sm_90 cubins and all PTX kept; the others zeroed (gpu-wheelhouse/fatbin_prune.py)
    $PY "$WH/fatbin_prune.py" "$so" "$T/pruned.so" --keep-elf 90 --keep-ptx all
    xz -9 -T2 -c "$T/pruned.so" > .vllm_ops/_C_stable_libtorch.abi3.so.xz
    echo "pruned (non-sm_90 cubins zeroed) from $(basename "$whl")" > .vllm_ops/NOTE
  else
    echo "unchanged from $(basename "$whl")" > .vllm_ops/NOTE
  fi
  basename "$whl" | sed -E 's/^vllm-([^-]+)-.*/\1/' > .vllm_ops/VERSION
  rm -rf "$T"
fi

if ! ls .whl/pydantic-*.whl >/dev/null 2>&1; then
  $PY -m pip download -q --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --implementation cp -d .whl pydantic
fi

if [ ! -f kernels/_build/peers/libs24_cslt_peer.so ]; then
  PYTHONPATH=${PYTHONPATH:-} $PY -m sparse24.kernels.peers.build || echo "(cuSPARSELt peer not built here: the device builds it)"
fi

echo "vLLM ops: $(cat .vllm_ops/VERSION), $(cat .vllm_ops/NOTE)"
du -sh .cache .vllm_ops .whl kernels/_build/peers 2>/dev/null
echo "tracked tree: $(( $(git ls-files -z | xargs -0 cat 2>/dev/null | wc -c) / 1048576 )) MiB (limit of a device call: 64 MiB in all)"
echo 'carry: [".cache", ".vllm_ops", ".whl", "kernels/_build/peers"]'
echo 'command: bash loadtest/kernel_bench/device_run.sh build tune bench'
