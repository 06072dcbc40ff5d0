"""Write k8s/grafana/dashboard.json (Grafana dashboard for the sparse FP8 LLM service) from the panel
list below. The JSON is committed (the ConfigMap and the provisioning command read it); tests check
that it equals a fresh build and that every metric it queries is exported (check_dashboard_metrics.py).

Usage: python k8s/tools/build_dashboard.py [--check]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
OUT = REPO / "k8s" / "grafana" / "dashboard.json"
UID = "sparse24-llm"
DS = {"type": "prometheus", "uid": "${datasource}"}
M = '{model_name=~"$model"}'
R = "[$__rate_interval]"


def q(metric_bucket: str, p: float, by: str = "") -> str:
    """PromQL for the p-quantile of a histogram across replicas (optionally split by labels)."""
    return (f"histogram_quantile({p}, sum by (le{', ' + by if by else ''}) "
            f"(rate({metric_bucket}{M}{R})))")


def quantiles(metric: str) -> list[tuple[str, str]]:
    return [(q(f"{metric}_bucket", p), f"p{int(p * 100)}") for p in (0.5, 0.9, 0.99)]


# (title, unit, [(expr, legend)], width) per row of the dashboard
PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    ("Time to first token (TTFT)", "s", quantiles("ray_vllm_time_to_first_token_seconds"), 8),
    ("Inter-token latency (ITL) vs SLA", "s", quantiles("ray_vllm_inter_token_latency_seconds") + [
        ("max(ray_sparse24_autoscaler_itl_target_ms) / 1000", "SLA target")], 8),
    ("Time per output token (TPOT)", "s", quantiles("ray_vllm_request_time_per_output_token_seconds"), 8),
    ("Requests/s (QPS)", "reqps", [
        (f"sum by (model_name) (rate(ray_vllm_request_success_total{M}{R}))", "finished {{model_name}}"),
        (f"sum by (status_code) (rate(ray_serve_num_http_requests_total{R}))", "HTTP {{status_code}}"),
        (f"sum by (error_type, status_code) (rate(ray_sparse24_ingress_errors_total{R}))",
         "ingress {{status_code}} {{error_type}}"),
        (f"sum by (error_type) (rate(ray_sparse24_request_errors_total{M}{R}))", "replica {{error_type}}")], 8),
    ("Tokens/s", "short", [
        (f"sum by (model_name) (rate(ray_vllm_generation_tokens_total{M}{R}))", "output {{model_name}}"),
        (f"sum by (model_name) (rate(ray_vllm_prompt_tokens_total{M}{R}))", "prompt {{model_name}}")], 8),
    ("Requests running / waiting", "short", [
        (f"sum by (model_name) (ray_vllm_num_requests_running{M})", "running {{model_name}}"),
        (f"sum by (model_name) (ray_vllm_num_requests_waiting{M})", "waiting {{model_name}}"),
        (f"sum by (model_name) (ray_sparse24_replica_inflight_requests{M})", "admitted {{model_name}}")], 8),
    ("Replicas: running vs target vs policy", "short", [
        ("sum by (deployment) (ray_serve_deployment_replica_healthy)", "healthy {{deployment}}"),
        ("max by (deployment) (ray_serve_autoscaling_target_replicas)", "target {{deployment}}"),
        ("max by (deployment) (ray_serve_autoscaling_desired_replicas)", "Ray desired {{deployment}}"),
        ("max by (deployment) (ray_sparse24_autoscaler_desired_replicas)", "ITL policy {{deployment}}")], 12),
    ("SLA attainment", "percentunit", [
        ((f'sum(rate(ray_vllm_inter_token_latency_seconds_bucket{{model_name=~"$model", le="$itl_sla_s"}}{R}))'
          f" / sum(rate(ray_vllm_inter_token_latency_seconds_count{M}{R}))"), "tokens within ITL SLA"),
        (('sum(rate(ray_sparse24_autoscaler_sla_seconds_total{state="met"}' + R + '))'
          ' / sum(rate(ray_sparse24_autoscaler_sla_seconds_total{state=~"met|missed"}' + R + '))'),
         "time SLA met (policy view)")], 12),
    ("Autoscaler decisions", "short", [
        (f"sum by (reason) (increase(ray_sparse24_autoscaler_scale_events_total{R}))", "{{reason}}"),
        ("max by (deployment) (ray_sparse24_autoscaler_infeasible)", "infeasible {{deployment}}")], 8),
    ("Autoscaler inputs: ITL measured vs expected (ms), arrival rate", "short", [
        ("max by (deployment) (ray_sparse24_autoscaler_measured_itl_ms)", "measured {{deployment}}"),
        ("max by (deployment) (ray_sparse24_autoscaler_expected_itl_ms)", "expected {{deployment}}"),
        ("max by (deployment) (ray_sparse24_autoscaler_arrival_rate_rps)", "arrivals/s {{deployment}}")], 8),
    ("GPU utilisation", "percent", [
        ("avg by (instance, GpuIndex) (ray_node_gpus_utilization)", "{{instance}} GPU {{GpuIndex}}")], 8),
    ("End-to-end and queue time (p90)", "s", [
        (q("ray_vllm_e2e_request_latency_seconds_bucket", 0.9), "e2e p90"),
        (q("ray_vllm_request_queue_time_seconds_bucket", 0.9), "queue p90")], 12),
    ("KV-cache usage", "percentunit", [
        (f"max by (model_name) (ray_vllm_kv_cache_usage_perc{M})", "{{model_name}}")], 12),
]


def build() -> dict:
    panels, x, y, row_h = [], 0, 0, 8
    for i, (title, unit, targets, width) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + row_h
        panels.append({
            "id": i, "type": "timeseries", "title": title, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": width, "h": row_h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
            "targets": [{"refId": chr(ord("A") + j), "datasource": DS, "expr": e, "legendFormat": lg}
                        for j, (e, lg) in enumerate(targets)],
        })
        x += width
    return {
        "uid": UID, "title": "Sparse24 FP8 LLM serving", "tags": ["sparse24", "ray-serve", "vllm"],
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "model", "type": "query", "datasource": DS, "label": "Model", "includeAll": True,
             "multi": True, "allValue": ".*", "refresh": 2,
             "query": {"query": "label_values(ray_vllm_num_requests_running, model_name)", "refId": "model"},
             "definition": "label_values(ray_vllm_num_requests_running, model_name)"},
            {"name": "itl_sla_s", "type": "custom", "label": "ITL SLA (s, a histogram bucket bound)",
             "query": "0.02,0.03,0.05,0.1", "current": {"text": "0.05", "value": "0.05"}},
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON differs from a fresh build")
    args = ap.parse_args(argv)
    if args.check:
        if not OUT.is_file() or OUT.read_text() != render():
            print(f"{OUT.relative_to(REPO)} is stale: run python k8s/tools/build_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
