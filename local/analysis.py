"""The numbers of one run of the local stack, read from its run directory and its Prometheus.

What the figures mean (replica-seconds, scale events, reversals, failures) is defined once, in
comparison/, for the local stack and the simulator alike; this module reads what they are computed from:
the load tester's summary.json and requests.csv, the autoscaler's decisions.jsonl, and the ready-worker
series from Prometheus (`sum(inference_workers)`, sampled every second). Where Prometheus has no samples,
the `ready` count of the decisions is integrated instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from comparison.events import decision_lines
from comparison.summary import run_figures
from loadtester import read_requests_csv, summarize
from loadtester.prometheus import fetch_series

REPLICA_QUERIES = {
    "workers": "sum(inference_workers)",
    "desired": "max(autoscaler_desired_replicas)",
    "cpu_cores": "sum(rate(inference_worker_cpu_seconds_total[10s]))",
}


def read_decisions(path: Path) -> list[dict]:
    """The decision lines of the autoscaler's JSON-lines log (other events and stray lines skipped)."""
    if not path.is_file():
        return []
    return decision_lines(path.read_text(errors="replace").splitlines())


def fetch_replicas(prometheus_url: str, start_unix_s: float, end_unix_s: float) -> tuple[dict, list[str]]:
    return fetch_series(prometheus_url, start_unix_s, end_unix_s, step_s=1.0, queries=REPLICA_QUERIES)


def analyse(run_dir: Path, replicas: dict, problems: list[str]) -> dict:
    """Everything the reports show about one run, from the files in `run_dir` and the fetched series."""
    summary = json.loads((run_dir / "loadtest" / "summary.json").read_text())
    run = summary["run"]
    start, end = run["start_unix_s"], run["end_unix_s"]
    result = run_figures(summary, read_decisions(run_dir / "decisions.jsonl"), replicas, start, end - start,
                         workers_source="prometheus")
    result["replica_problems"] = problems
    return result


def consistency_problems(run_dir: Path) -> list[str]:
    """Differences between summary.json and what requests.csv says (they must describe the same requests)."""
    summary = json.loads((run_dir / "loadtest" / "summary.json").read_text())
    table = read_requests_csv(run_dir / "loadtest" / "requests.csv")
    again = summarize(table, slo_ms=summary["slo"]["slo_ms"], window_s=summary["slo"]["window_s"],
                      duration_s=summary["throughput"]["duration_s"])
    problems = []
    for section in ("requests", "latency_ms"):
        if again[section] != summary[section]:
            problems.append(f"{section}: summary.json {summary[section]} != requests.csv {again[section]}")
    for key in ("windows", "windows_met", "requests_under_slo"):
        if again["slo"][key] != summary["slo"][key]:
            problems.append(f"slo.{key}: summary.json {summary['slo'][key]} != requests.csv {again['slo'][key]}")
    return problems
