"""The monitoring pieces agree with the running code.

A real service (gunicorn, random weights) and a real autoscaler (dry-run scaler, so it touches nothing)
are started; their /metrics is the ground truth. Every metric name the rules, the autoscaler's default
queries, the dashboard and the load tester's replica plot use must be exposed there, every recording rule they use must be defined, and
the local Prometheus config, scraping both, must turn real traffic into the recorded series.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import requests
import yaml

from tests import support

PROMETHEUS = support.REPO / "prometheus"
DASHBOARD = PROMETHEUS / "grafana-dashboard.json"

# PromQL words that look like metric names but are functions, keywords or operators.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "absent",
    "absent_over_time", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "quantile_over_time", "time", "timestamp", "vector", "scalar", "clamp_min", "clamp_max",
    "clamp", "abs", "ceil", "floor", "round", "predict_linear", "changes", "resets", "label_replace",
    "label_join", "sort", "sort_desc", "inf", "nan", "le",
}


def metric_names(expr: str) -> set[str]:
    """Metric and recorded-series names a PromQL expression selects (label matchers and strings removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)         # string literals (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)                    # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                   # range and subquery durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]", w)}


def rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"] for r in g["rules"]]


def recorded_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def rule_expressions() -> list[str]:
    return [r["expr"] for r in rules()]


def autoscaler_default_queries() -> list[str]:
    import dataclasses

    from autoscaler.config import Config

    config = Config()
    names = [f.name for f in dataclasses.fields(Config) if f.name.startswith("query_")]
    return [config.query(name) for name in names if config.query(name)]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def loadtester_queries() -> list[str]:
    from loadtester.prometheus import REPLICA_QUERIES

    return list(REPLICA_QUERIES.values())


SOURCES = {
    "rules": rule_expressions,
    "autoscaler-default-queries": autoscaler_default_queries,
    "dashboard": dashboard_expressions,
    "loadtester-replica-queries": loadtester_queries,
}


def unknown_names(expressions: list[str], exposed: set[str]) -> set[str]:
    known = exposed | recorded_names() | {"up"}
    return {name for e in expressions for name in metric_names(e)} - known


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real service with one answered and one rejected request, and a real dry-run autoscaler."""
    tmp = tmp_path_factory.mktemp("stack")
    service = support.start_gunicorn(tmp / "service", workers=1)
    autoscaler = None
    try:
        url = service.extra["url"]
        ok = requests.post(f"{url}/predict", data=support.synthetic_jpeg(), headers={"Content-Type": "image/jpeg"},
                           timeout=60)
        assert ok.status_code == 200, ok.text
        bad = requests.post(f"{url}/predict", data=b"not an image", headers={"Content-Type": "image/jpeg"},
                            timeout=60)
        assert bad.status_code == 400, bad.text
        metrics_port = support.free_port()
        autoscaler = support.start_child("autoscaler", [
            support.PYTHON, "-m", "autoscaler", "--scaler", "dry-run",
            "--prometheus-url", f"http://127.0.0.1:{support.free_port()}",
            "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port), "--poll-interval-s", "1"],
            tmp / "logs")
        autoscaler_url = f"http://127.0.0.1:{metrics_port}"
        support.wait_until(lambda: autoscaler.alive() and support.http_ok(f"{autoscaler_url}/metrics"),
                           timeout_s=60, what=f"the autoscaler's /metrics (log: {autoscaler.log_path})")
        yield {
            "service": service, "autoscaler": autoscaler, "service_url": url, "autoscaler_url": autoscaler_url,
            "service_metrics": requests.get(f"{url}/metrics", timeout=10).text,
            "autoscaler_metrics": requests.get(f"{autoscaler_url}/metrics", timeout=10).text,
        }
    finally:
        if autoscaler is not None:
            autoscaler.stop()
        service.stop()


@pytest.fixture(scope="module")
def exposed(stack) -> set[str]:
    return support.exposed_metric_names(stack["service_metrics"]) | \
        support.exposed_metric_names(stack["autoscaler_metrics"])


# --- metric names ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("source", list(SOURCES), ids=list(SOURCES))
def test_every_metric_used_is_exposed(exposed, source):
    expressions = SOURCES[source]()
    assert expressions, f"no expression found in {source}"
    assert unknown_names(expressions, exposed) == set()


@pytest.mark.slow
@pytest.mark.parametrize("expr,name", [
    ("sum(rate(inference_request_total[30s]))", "inference_request_total"),
    ('histogram_quantile(0.95, sum by (le) (rate(inference_latency_seconds_bucket{job="x"}[1m])))',
     "inference_latency_seconds_bucket"),
    ("job:inference_requests:rate1m", "job:inference_requests:rate1m"),
    ("autoscaler_replicas > 3", "autoscaler_replicas"),
], ids=["typo", "renamed-histogram", "undefined-recording-rule", "autoscaler-metric"])
def test_name_check_catches(exposed, expr, name):
    assert unknown_names([expr], exposed) == {name}


@pytest.mark.parametrize("expr,names", [
    ('sum by (job, le) (rate(a_bucket{le="0.5",code=~"5.."}[30s]))', {"a_bucket"}),
    ("x:y:z / (b > 0)", {"x:y:z", "b"}),
    ("time() - max(timestamp(c))", {"c"}),
    ('absent(up{job="resnet18-inference"} == 1)', {"up"}),
], ids=["matchers-and-grouping", "recorded-and-comparison", "functions", "absent"])
def test_metric_name_extraction(expr, names):
    assert metric_names(expr) == names


@pytest.mark.slow
def test_slo_bound_is_a_latency_bucket(stack):
    """The SLO alerts count requests under le="0.5": that bucket must exist or they would read nothing."""
    slo_s = float(yaml.safe_load((support.REPO / "k8s" / "autoscaler-config.yaml").read_text())["data"]
                  ["SLO_P95_MS"]) / 1000
    buckets = {float(m) for m in re.findall(r'inference_request_duration_seconds_bucket\{[^}]*le="([^"]+)"',
                                            stack["service_metrics"])}
    assert slo_s in buckets
    assert f'le="{slo_s:g}"' in (PROMETHEUS / "rules.yml").read_text()


def test_alert_thresholds_match_the_deployed_settings():
    data = yaml.safe_load((support.REPO / "k8s" / "autoscaler-config.yaml").read_text())["data"]
    (at_max,) = [r for r in rules() if r.get("alert") == "AutoscalerAtMaxReplicas"]
    assert at_max["expr"].rstrip().endswith(f">= {data['MAX_REPLICAS']}")
    assert f"MAX_REPLICAS ({data['MAX_REPLICAS']})" in at_max["annotations"]["description"]


# --- probes answer where the manifests point --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("target,path", [
    ("service_url", "/healthz"), ("service_url", "/readyz"), ("service_url", "/metrics"),
    ("autoscaler_url", "/healthz"), ("autoscaler_url", "/metrics"),
], ids=["service-liveness", "service-readiness", "service-metrics", "autoscaler-health", "autoscaler-metrics"])
def test_probe_and_scrape_paths_answer(stack, target, path):
    assert requests.get(stack[target] + path, timeout=10).status_code == 200


# --- the local Prometheus config on real traffic ----------------------------------------------------------

@pytest.mark.slow
def test_local_prometheus_records_real_traffic(stack, tmp_path):
    """The local config, pointed at the running service and autoscaler, yields the recorded series."""
    service_port = stack["service"].extra["port"]
    autoscaler_port = stack["autoscaler_url"].rsplit(":", 1)[1]
    # Written before the start, as a runner using other ports would: the folder must exist to be watched.
    targets = tmp_path / "prometheus" / "targets"
    targets.mkdir(parents=True)
    (targets / "resnet18-inference.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{service_port}"]}]))
    (targets / "autoscaler.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{autoscaler_port}"]}]))
    prom = support.start_prometheus(tmp_path, (PROMETHEUS / "prometheus-local.yml").read_text(), extra_files={
        "rules.yml": (PROMETHEUS / "rules.yml").read_text()})
    try:
        image = support.synthetic_jpeg()

        def query(expr: str) -> list:
            body = requests.get(f"{prom.extra['url']}/api/v1/query", params={"query": expr}, timeout=5).json()
            return body["data"]["result"]

        def recorded():
            requests.post(f"{stack['service_url']}/predict", data=image, headers={"Content-Type": "image/jpeg"},
                          timeout=60)
            rate = query('job:inference_requests:rate30s{job="resnet18-inference"}')
            p95 = query('job:inference_request_duration_seconds:p95_30s{job="resnet18-inference"}')
            return rate and p95 and float(rate[0]["value"][1]) > 0 and math.isfinite(float(p95[0]["value"][1]))

        support.wait_until(recorded, timeout_s=90, interval_s=0.5, what="recorded request rate and p95")
        assert float(query('job:inference_workers:sum{job="resnet18-inference"}')[0]["value"][1]) == 1
        support.wait_until(lambda: sorted(r["metric"]["job"] for r in query("up == 1")) ==
                           ["autoscaler", "resnet18-inference"], timeout_s=30, what="both jobs scraped")
    finally:
        prom.stop()
