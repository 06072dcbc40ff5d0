"""Static checks of k8s/Dockerfile (no Docker daemon in CI), parsed with BuildKit's own parser
(the `dockerfile` package wraps moby/buildkit's Go parser).

Rules: known instructions only; every base image pinned to an exact version (x.y.z tag or digest);
the runtime stages (gpu, cpu) run as a non-root USER; our CUTLASS kernels are compiled for sm_90a in a
build stage and copied into the GPU image (nothing compiles at pod start); the GPU image installs the
`gpu` extra and asserts the Ray version pinned in pyproject; no model weights are copied in.

Usage: python k8s/tools/check_dockerfile.py [DOCKERFILE]   (exit 1 with one line per problem)
"""
from __future__ import annotations

import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "k8s" / "Dockerfile"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
RUNTIME_STAGES = ("gpu", "cpu")
_PINNED = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:[^:@/]*\d+\.\d+\.\d+[^:@/]*$)")
_WEIGHTS = re.compile(r"\.(safetensors|bin|gguf|pt|pth)\b|(^|\s)/?models?/")


def _stages(cmds) -> dict[str, list]:
    """{stage name: its instructions}; an unnamed FROM gets 'final:<image>'."""
    stages: dict[str, list] = {}
    current = None
    for c in cmds:
        if c.cmd.upper() == "FROM":
            v = c.value
            current = v[2] if len(v) >= 3 and v[1].upper() == "AS" else f"final:{v[0]}"
            stages[current] = []
        elif current is not None:
            stages[current].append(c)
    return stages


def problems(text: str, pyproject: str) -> list[str]:
    import dockerfile
    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        return [f"unparsable: {e}"]
    out = [f"line {c.start_line}: unknown instruction {c.cmd!r}" for c in cmds if c.cmd.upper() not in INSTRUCTIONS]
    args = dict(a.split("=", 1) for c in cmds if c.cmd.upper() == "ARG" for a in c.value if "=" in a)
    stage_names = set()
    for c in cmds:
        if c.cmd.upper() != "FROM":
            continue
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), c.value[0])
        if image in stage_names:
            continue
        if not _PINNED.search(image):
            out.append(f"line {c.start_line}: base image {image!r} is not pinned to an exact version or digest")
        if len(c.value) >= 3:
            stage_names.add(c.value[2])
    stages = _stages(cmds)
    for name in RUNTIME_STAGES:
        users = [c.value[0] for c in stages.get(name, []) if c.cmd.upper() == "USER"]
        if name not in stages:
            out.append(f"no '{name}' stage")
        elif not users or users[-1] in ("root", "0", "0:0"):
            out.append(f"stage {name}: runs as root (needs a final non-root USER)")
    if not list(stages)[-1:] or not list(stages)[-1].startswith("final:gpu"):
        out.append("the last stage (the default target) must be the gpu image")
    kernels_runs = " ".join(c.value[0] for c in stages.get("kernels", []) if c.cmd.upper() == "RUN")
    if "kernels/build.py" not in kernels_runs:
        out.append("stage kernels: does not compile our kernels (kernels/build.py) at image build time")
    gpu = stages.get("gpu", [])
    if not any(c.cmd.upper() == "COPY" and "--from=kernels" in c.flags for c in gpu):
        out.append("stage gpu: does not copy the compiled kernels from the kernels stage")
    gpu_runs = " ".join(c.value[0] for c in gpu if c.cmd.upper() == "RUN")
    if ".[gpu," not in gpu_runs and ".[gpu]" not in gpu_runs:
        out.append("stage gpu: does not install the package with the gpu extra")
    pin = re.search(r'"ray\[serve\]==([0-9.]+)"', pyproject)
    if pin and f"ray.__version__ == '{pin.group(1)}'" not in gpu_runs:
        out.append(f"stage gpu: does not assert ray=={pin.group(1)} (the pyproject pin)")
    for c in cmds:
        if c.cmd.upper() in ("COPY", "ADD") and _WEIGHTS.search(" ".join(c.value)):
            out.append(f"line {c.start_line}: copies model weights into the image: {c.original}")
    return out


def main(argv: list[str] | None = None) -> int:
    path = pathlib.Path((argv if argv is not None else sys.argv[1:])[0]) if (argv or sys.argv[1:]) else DOCKERFILE
    found = problems(path.read_text(), (REPO / "pyproject.toml").read_text())
    for p in found:
        print(f"{path}: {p}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
