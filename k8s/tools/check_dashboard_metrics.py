"""Check that every PromQL query in the Grafana dashboard parses and names only exported metrics.

Queries are parsed with `promql-parser` (Python binding of the Rust PromQL parser) after Grafana's
variables are replaced by neutral values; every vector selector's metric name must be exported:
either listed in k8s/grafana/exported_metrics.yaml (offline, default) or present in a live scrape of a
running server's Prometheus endpoint (`--scrape URL`, e.g. Ray's metrics export port of a `serve run`).

Usage:
  python k8s/tools/check_dashboard_metrics.py [--dashboard FILE] [--scrape URL ...]
Exit status 1 with one line per unknown metric or unparsable query.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import urllib.request

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "k8s" / "grafana" / "dashboard.json"
EXPORTED = REPO / "k8s" / "grafana" / "exported_metrics.yaml"
SCRAPE_TIMEOUT_S = 10
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana variables -> values that keep the query valid PromQL
_VARIABLES = [
    (re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"), "5m"),
    (re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?"), "x"),
]


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query target, including those inside collapsed rows."""
    out = []

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])
    for p in panels(dashboard.get("panels") or []):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((p.get("title", "?"), t["expr"]))
    for var in (dashboard.get("templating") or {}).get("list") or []:
        query = var.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if var.get("type") == "query" and isinstance(text, str):
            m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", text)
            out.append((f"variable {var.get('name')}", m.group(1) if m else text))
    return out


def substitute_variables(expr: str) -> str:
    for pattern, value in _VARIABLES:
        expr = pattern.sub(value, expr)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names of all vector selectors in a PromQL expression (raises ValueError if unparsable)."""
    import promql_parser as pp
    ast = pp.parse(substitute_variables(expr))
    names: set[str] = set()

    def walk(node):
        if isinstance(node, pp.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                names.update(m.value for m in node.matchers.matchers if m.name == "__name__")
            return
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if isinstance(child, pp.Expr):
                walk(child)
        for child in getattr(node, "args", None) or []:
            walk(child)
    walk(ast)
    return names


def exported_from_list(path: pathlib.Path = EXPORTED, only_scrape_optional: bool = False) -> set[str]:
    """Sample names the families in exported_metrics.yaml produce (optionally only those marked
    `scrape_optional`, which a scrape of the CPU test server may lack)."""
    fams = (yaml.safe_load(path.read_text()) or {}).get("families") or {}
    names = set()
    for fam, info in fams.items():
        if only_scrape_optional and not info.get("scrape_optional"):
            continue
        if info["type"] == "histogram":
            names.update(fam + s for s in HISTOGRAM_SUFFIXES)
        else:
            names.add(fam)
    return names


def exported_from_scrape(url: str) -> set[str]:
    """Sample names in a Prometheus text exposition at `url`."""
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as resp:
        text = resp.read().decode()
    return parse_exposition(text)


def parse_exposition(text: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def live_problems(dashboard: dict, exposition: str) -> list[str]:
    """Problems against a scrape of a running CPU test server: a family must appear in the scrape,
    except those marked `scrape_optional` in exported_metrics.yaml (GPU utilisation, the ITL policy's
    series, counters that have not fired), which must then at least be in the list."""
    return problems(dashboard, parse_exposition(exposition) | exported_from_list(only_scrape_optional=True))


def problems(dashboard: dict, exported: set[str]) -> list[str]:
    out = []
    for title, expr in dashboard_queries(dashboard):
        try:
            names = metric_names(expr)
        except (ValueError, TypeError) as e:
            out.append(f"{title}: unparsable PromQL ({e}): {expr}")
            continue
        if not names:
            out.append(f"{title}: query selects no metric: {expr}")
        out += [f"{title}: metric {n!r} is not exported" for n in sorted(names - exported)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dashboard", type=pathlib.Path, default=DASHBOARD)
    ap.add_argument("--scrape", action="append", default=[], help="Prometheus endpoint URL(s) of a running server")
    args = ap.parse_args(argv)
    exported: set[str] = set()
    for url in args.scrape:
        exported |= exported_from_scrape(url) | exported_from_list(only_scrape_optional=True)
    if not args.scrape:
        exported = exported_from_list()
    found = problems(json.loads(args.dashboard.read_text()), exported)
    for p in found:
        print(p)
    n = len(dashboard_queries(json.loads(args.dashboard.read_text())))
    print(f"{n} queries, {len(found)} problem(s) against {'scrape' if args.scrape else EXPORTED.name}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
