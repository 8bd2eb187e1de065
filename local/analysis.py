"""The numbers of one run: the load tester's summary, the autoscaler's decisions, replicas and their cost.

Cost is replica-seconds: the number of warmed-up workers (Prometheus' `sum(inference_workers)`, sampled
every second) integrated over the replay. Where Prometheus has no samples, the `ready` count of the
autoscaler's decisions is integrated instead (a step function between decisions).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

from loadtester import read_requests_csv, summarize
from loadtester.prometheus import fetch_series

REPLICA_QUERIES = {
    "workers": "sum(inference_workers)",
    "desired": "max(autoscaler_desired_replicas)",
    "cpu_cores": "sum(rate(inference_worker_cpu_seconds_total[10s]))",
}
CONNECTION_LOSSES = ("timeout", "conn_refused", "conn_reset", "conn_error", "protocol_error", "dropped_client",
                     "cancelled", "client_error")


def read_decisions(path: Path) -> list[dict]:
    """The decision lines of the autoscaler's JSON-lines log (other events and stray lines skipped)."""
    out = []
    if not path.is_file():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "decision":
            out.append(record)
    return out


def unix_time(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def scale_events(decisions: list[dict], start_unix_s: float) -> list[dict]:
    """Applied scale-ups and scale-downs, with their time relative to the start of the replay."""
    events = []
    for d in decisions:
        if d.get("direction") in ("up", "down") and d.get("applied", True):
            events.append({"t_s": round(unix_time(d["time"]) - start_unix_s, 3), "direction": d["direction"],
                           "from": d.get("current"), "to": d.get("desired"), "reason": d.get("reason", "")})
    return events


def reversals(events: list[dict]) -> int:
    """How often the direction of consecutive scale events flips (up then down, or down then up)."""
    directions = [e["direction"] for e in events]
    return sum(1 for a, b in zip(directions, directions[1:]) if a != b)


def integrate_steps(points: list[list[float]], start_s: float, end_s: float) -> float:
    """Integral of a step function given as [t, value] points (each value holds until the next point)."""
    points = sorted(p for p in points if math.isfinite(p[1]))
    if not points or end_s <= start_s:
        return 0.0
    total = 0.0
    for (t, value), nxt in zip(points, points[1:] + [[end_s, 0.0]]):
        lo, hi = max(t, start_s), min(nxt[0], end_s)
        if hi > lo:
            total += value * (hi - lo)
    # Before the first sample, the first value held (a run starts with its initial workers).
    if points[0][0] > start_s:
        total += points[0][1] * (min(points[0][0], end_s) - start_s)
    return total


def fetch_replicas(prometheus_url: str, start_unix_s: float, end_unix_s: float) -> tuple[dict, list[str]]:
    return fetch_series(prometheus_url, start_unix_s, end_unix_s, step_s=1.0, queries=REPLICA_QUERIES)


def analyse(run_dir: Path, replicas: dict, problems: list[str]) -> dict:
    """Everything the reports show about one run, from the files in `run_dir` and the fetched series."""
    summary = json.loads((run_dir / "loadtest" / "summary.json").read_text())
    run = summary["run"]
    start, end = run["start_unix_s"], run["end_unix_s"]
    duration_s = end - start
    decisions = read_decisions(run_dir / "decisions.jsonl")
    events = scale_events(decisions, start)
    decision_ready = [[round(unix_time(d["time"]) - start, 3), float(d["ready"])] for d in decisions
                      if d.get("ready") is not None]
    if replicas.get("workers"):
        replica_seconds, source = integrate_steps(replicas["workers"], 0.0, duration_s), "prometheus"
    else:
        replica_seconds, source = integrate_steps(decision_ready, 0.0, duration_s), "decisions"
    errors = summary["requests"]["errors"]
    workers = [v for _, v in replicas.get("workers", [])] or [v for _, v in decision_ready] or [0.0]
    return {
        "duration_s": round(duration_s, 3),
        "requests": summary["requests"],
        "latency_ms": summary["latency_ms"],
        "slo": summary["slo"],
        "throughput": summary["throughput"],
        "errors_total": summary["requests"]["failed"],
        "rejected_503": errors.get("rejected_503", 0),
        "server_errors_5xx": errors.get("rejected_503", 0) + errors.get("deadline_504", 0) + errors.get("http_5xx", 0),
        "connection_losses": sum(errors.get(k, 0) for k in CONNECTION_LOSSES),
        "replica_seconds": round(replica_seconds, 1),
        "replica_seconds_source": source,
        "mean_replicas": round(replica_seconds / duration_s, 3) if duration_s > 0 else None,
        "max_workers": max(workers),
        "decisions": len(decisions),
        "scale_ups": sum(1 for e in events if e["direction"] == "up"),
        "scale_downs": sum(1 for e in events if e["direction"] == "down"),
        "scale_events": len(events),
        "reversals": reversals(events),
        "events": events,
        "decision_ready": decision_ready,
        "replicas": replicas,
        "replica_problems": problems,
        "windows": summary.get("windows", []),
        "per_second": summary.get("per_second", {}),
        "start_unix_s": start,
    }


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
