"""Replica counts over a replay, read from Prometheus after the run (query_range).

The one set of series a run records: written to replicas.csv and summary.json and drawn in timeline.png;
reports built on a run read them from there rather than asking Prometheus again.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import requests

# Series name -> PromQL. Workers are what serves traffic; the autoscaler's gauges show what it asked for.
REPLICA_QUERIES = {
    "workers": "sum(inference_workers)",
    "desired_replicas": "max(autoscaler_desired_replicas)",
    "current_replicas": "max(autoscaler_current_replicas)",
}


def fetch_series(prometheus_url: str, start_unix_s: float, end_unix_s: float, step_s: float = 1.0,
                 timeout_s: float = 10.0) -> tuple[dict, list[str]]:
    """{name: [[t_s, value], ...]} with t_s relative to `start_unix_s`, and a list of problems.

    A series with no data is left out; a failing query is reported, never raised, because the replay's
    own results matter more than the replica plot.
    """
    series: dict[str, list[list[float]]] = {}
    problems: list[str] = []
    # Prometheus refuses more than 11,000 points per series: widen the step for long runs.
    step_s = max(step_s, (end_unix_s - start_unix_s) / 10_000.0)
    for name, promql in REPLICA_QUERIES.items():
        try:
            response = requests.get(f"{prometheus_url.rstrip('/')}/api/v1/query_range", timeout=timeout_s,
                                    params={"query": promql, "start": f"{start_unix_s:.3f}",
                                            "end": f"{end_unix_s:.3f}", "step": f"{step_s:g}"})
            body = response.json()
            if response.status_code != 200 or body.get("status") != "success":
                problems.append(f"{name} ({promql}): {body.get('error', response.status_code)}")
                continue
        except (requests.RequestException, ValueError) as exc:
            problems.append(f"{name} ({promql}): {exc}")
            continue
        points = []
        for result in body["data"]["result"][:1]:
            for stamp, value in result["values"]:
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

