"""The load tester's reads from Prometheus (query_range): the replica counts over a replay, read after the
run, and the request-rate history `export-trace` turns into a trace.

The replica counts are the one set of series a run records: written to replicas.csv and summary.json and
drawn in timeline.png; reports built on a run read them from there rather than asking Prometheus again.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import requests

# Series name -> PromQL. Workers are what serves traffic; the autoscaler's gauges show what it asked for.
REPLICA_QUERIES = {
    "workers": "sum(inference_workers)",
    "desired_replicas": "max(autoscaler_desired_replicas)",
    "current_replicas": "max(autoscaler_current_replicas)",
}


# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusError(Exception):
    """A range query that brought no series back. kind: 'unreachable' (no HTTP answer), 'bad_query' (Prometheus
    refused the PromQL itself), 'error' (any other refusal: time-out, overload, HTTP status) or 'bad_response'
    (an answer that is not a range query's)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def query_range(prometheus_url: str, promql: str, start_unix_s: float, end_unix_s: float, step_s: float,
                timeout_s: float = 10.0, session: requests.Session | None = None) -> list[dict]:
    """The series of one /api/v1/query_range: [{"metric": {label: value}, "values": [[t_s, "text"], ...]}];
    raises PrometheusError."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query_range"
    try:
        response = (session or requests).get(url, timeout=timeout_s, params={
            "query": promql, "start": f"{start_unix_s:.3f}", "end": f"{end_unix_s:.3f}", "step": f"{step_s:g}"})
    except requests.Timeout:
        raise PrometheusError(f"Prometheus at {prometheus_url} did not answer within {timeout_s:g} s",
                              "unreachable") from None
    except requests.RequestException as exc:
        why = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
        raise PrometheusError(f"cannot reach Prometheus at {prometheus_url} ({why})", "unreachable") from None
    return range_result(response.status_code, response.text)


def range_result(status_code: int, text: str) -> list[dict]:
    """The series of a query_range answer (split out so every outcome is testable); raises PrometheusError."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PrometheusError(f"HTTP {status_code} with a body that is not Prometheus' JSON: {text[:200]!r}",
                              "error" if status_code != 200 else "bad_response")
    if body.get("status") != "success" or status_code != 200:
        kind = "bad_query" if body.get("errorType") == "bad_data" else "error"
        raise PrometheusError(f"{body.get('errorType') or f'HTTP {status_code}'}: {body.get('error', '')}", kind)
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise PrometheusError(f"not a range query's answer: {text[:200]!r}", "bad_response")
    return data["result"]


def fetch_series(prometheus_url: str, start_unix_s: float, end_unix_s: float, step_s: float = 1.0,
                 timeout_s: float = 10.0) -> tuple[dict, list[str]]:
    """{name: [[t_s, value], ...]} with t_s relative to `start_unix_s`, and a list of problems.

    A series with no data is left out; a failing query is reported, never raised, because the replay's
    own results matter more than the replica plot.
    """
    series: dict[str, list[list[float]]] = {}
    problems: list[str] = []
    # Prometheus refuses more than MAX_POINTS points per series: widen the step for long runs.
    step_s = max(step_s, (end_unix_s - start_unix_s) / 10_000.0)
    for name, promql in REPLICA_QUERIES.items():
        try:
            result = query_range(prometheus_url, promql, start_unix_s, end_unix_s, step_s, timeout_s)
        except PrometheusError as exc:
            problems.append(f"{name} ({promql}): {exc}")
            continue
        points = []
        for one in result[:1]:
            for stamp, value in one["values"]:
                number = float(value)
                if math.isfinite(number):
                    points.append([round(float(stamp) - start_unix_s, 3), number])
        if points:
            series[name] = points
    return series, problems


def write_replicas_csv(path: Path, series: dict) -> None:
    """Long format (t_s, series, value), one row per point, so new series need no new columns."""
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("t_s", "series", "value"))
        for name, points in series.items():
            for t_s, value in points:
                out.writerow((t_s, name, value))

