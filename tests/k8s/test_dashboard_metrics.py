"""Every PromQL query of the Grafana dashboard parses and names only metrics the app exports."""
from __future__ import annotations

import copy
import json
import pathlib
import re

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cdm(tool):
    return tool("check_dashboard_metrics")


@pytest.fixture()
def dashboard(cdm):
    return json.loads(cdm.DASHBOARD.read_text())


def test_committed_dashboard_queries_only_exported_metrics(cdm, dashboard):
    queries = cdm.dashboard_queries(dashboard)
    assert len(queries) >= 30
    assert cdm.problems(dashboard, cdm.exported_from_list()) == []


def test_dashboard_covers_the_required_signals(cdm, dashboard):
    names = set().union(*(cdm.metric_names(e) for _, e in cdm.dashboard_queries(dashboard)))
    for needed in ("ray_vllm_time_to_first_token_seconds_bucket", "ray_vllm_inter_token_latency_seconds_bucket",
                   "ray_vllm_request_time_per_output_token_seconds_bucket", "ray_vllm_generation_tokens_total",
                   "ray_vllm_num_requests_running", "ray_vllm_num_requests_waiting",
                   "ray_serve_deployment_replica_healthy", "ray_serve_autoscaling_target_replicas",
                   "ray_sparse24_autoscaler_scale_events_total", "ray_sparse24_autoscaler_sla_seconds_total",
                   "ray_node_gpus_utilization"):
        assert needed in names


def test_misspelled_metric_is_rejected(cdm, dashboard):
    broken = copy.deepcopy(dashboard)
    t = broken["panels"][0]["targets"][0]
    t["expr"] = t["expr"].replace("ray_vllm_time_to_first_token_seconds_bucket", "ray_vllm_time_to_first_token_bucket")
    (err,) = cdm.problems(broken, cdm.exported_from_list())
    assert "ray_vllm_time_to_first_token_bucket" in err and "not exported" in err


def test_metric_in_a_template_variable_is_checked(cdm, dashboard):
    broken = copy.deepcopy(dashboard)
    var = next(v for v in broken["templating"]["list"] if v["type"] == "query")
    var["query"]["query"] = "label_values(vllm_num_requests_running, model_name)"   # missing ray_ prefix
    (err,) = cdm.problems(broken, cdm.exported_from_list())
    assert "variable model" in err and "vllm_num_requests_running" in err


def test_unparsable_query_is_rejected(cdm, dashboard):
    broken = copy.deepcopy(dashboard)
    broken["panels"][1]["targets"][0]["expr"] = "sum(rate(ray_vllm_generation_tokens_total[5m])"
    (err,) = cdm.problems(broken, cdm.exported_from_list())
    assert "unparsable PromQL" in err


def test_histogram_suffix_must_match_the_family_type(cdm):
    exported = cdm.exported_from_list()
    assert "ray_vllm_inter_token_latency_seconds_bucket" in exported
    assert "ray_vllm_inter_token_latency_seconds" not in exported      # a histogram has no bare series
    assert "ray_vllm_num_requests_running_bucket" not in exported      # a gauge has no buckets


def test_selector_names_are_found_in_every_expression_shape(cdm):
    expr = ('histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"$model"}[$__rate_interval])))'
            ' / on() group_left sum({__name__="b"}) + max_over_time(c[5m:1m]) and -d offset 5m')
    assert cdm.metric_names(expr) == {"a_bucket", "b", "c", "d"}


def test_exported_metric_list_matches_the_code_that_defines_each_metric():
    import site
    fams = yaml.safe_load((REPO / "k8s" / "grafana" / "exported_metrics.yaml").read_text())["families"]
    site_dirs = [pathlib.Path(p) for p in site.getsitepackages()]
    for fam, info in fams.items():
        src = info["source"]
        if src.startswith("site:"):
            path = next((d / src[5:] for d in site_dirs if (d / src[5:]).is_file()), None)
            assert path is not None, f"{fam}: {src} not installed"
        else:
            path = REPO / src
            if not path.is_file():
                pytest.skip(f"{src} not committed yet")
        assert re.search(rf"[\"']{re.escape(info['literal'])}[\"']", path.read_text()), \
            f"{fam}: {info['literal']!r} not defined in {src}"
        # the exported name follows Ray's rule from the literal: ray_ prefix, _total on counters
        base = fam.removeprefix("ray_")
        assert info["type"] in ("histogram", "gauge", "counter")
        if info["type"] == "counter":
            assert base.endswith("_total")


def test_scrape_of_ray_export_is_parsed_into_sample_names(cdm):
    # a piece of a real Ray 2.60 export (ray.util.metrics Counter/Histogram/Gauge, 2026-11-25)
    text = (REPO / "tests" / "k8s" / "data" / "ray_export_sample.txt").read_text()
    names = cdm.parse_exposition(text)
    assert {"ray_k8sx_tokens_total", "ray_k8sx_events_total", "ray_k8sx_lat_seconds_bucket",
            "ray_k8sx_lat_seconds_count", "ray_k8sx_g"} <= names


def test_live_check_lets_only_scrape_optional_families_be_absent(cdm, dashboard):
    # a scrape holding nothing: every problem left must be a family the CPU test server always exports
    errs = cdm.live_problems(dashboard, "")
    missing = {re.search(r"metric '([^']+)'", e).group(1) for e in errs}
    assert "ray_vllm_inter_token_latency_seconds_bucket" in missing
    assert not any(m.startswith(("ray_sparse24_autoscaler_", "ray_node_gpus_", "ray_sparse24_ingress_errors"))
                   for m in missing)


def test_dashboard_passes_against_a_recorded_live_scrape_of_the_app(cdm, dashboard):
    lines = (REPO / "tests" / "k8s" / "data" / "recorded_scrape_names.txt").read_text().splitlines()
    scraped = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    assert len(scraped) > 50
    # what the recording lacks must be exactly the families that need an event or a GPU
    errs = cdm.problems(dashboard, scraped)
    missing = {re.search(r"metric '([^']+)'", e).group(1) for e in errs}
    assert missing == {"ray_sparse24_request_errors_total", "ray_sparse24_autoscaler_scale_events_total",
                       "ray_node_gpus_utilization"}
    assert cdm.problems(dashboard, scraped | cdm.exported_from_list(only_scrape_optional=True)) == []


def test_exported_list_agrees_with_the_recorded_scrape(cdm):
    lines = (REPO / "tests" / "k8s" / "data" / "recorded_scrape_names.txt").read_text().splitlines()
    scraped = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    not_scraped = cdm.exported_from_list() - scraped
    assert not_scraped <= cdm.exported_from_list(only_scrape_optional=True), sorted(not_scraped)
