"""Relay Ray's Prometheus export at the Serve HTTP port's `/metrics`.

Replicas record metrics through `ray.serve.metrics`; Ray aggregates them per node in its metrics agent
(`MetricsExportPort`, tagged with deployment/replica/application). Scraping every alive node's agent and keeping
our families gives one `/metrics` for the whole app, whichever ingress replica answers.
"""
from __future__ import annotations

import time
import urllib.request


def filter_families(text: str, prefixes: tuple[str, ...], seen_meta: set[str]) -> list[str]:
    """Lines of Prometheus text whose metric name starts with one of prefixes (HELP/TYPE once per family)."""
    out = []
    for line in text.splitlines():
        if line.startswith("# "):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[2].startswith(prefixes) and line not in seen_meta:
                seen_meta.add(line)
                out.append(line)
        elif line.startswith(prefixes):
            out.append(line)
    return out


def scrape_ray_metrics(prefixes: tuple[str, ...], timeout_s: float) -> str:
    """Prometheus text of every alive Ray node's metrics agent, filtered to `prefixes`. Blocking (run in a thread)."""
    import ray

    seen_meta: set[str] = set()
    out: list[str] = []
    for node in ray.nodes():
        port = node.get("MetricsExportPort")
        if not node.get("Alive") or not port:
            continue
        url = f"http://{node['NodeManagerAddress']}:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                text = resp.read().decode()
        except OSError as exc:
            out.append(f"# scrape of {url} failed: {exc}")
            continue
        out.extend(filter_families(text, prefixes, seen_meta))
    out.append(f"# scraped at {time.time():.3f}")
    return "\n".join(out) + "\n"
