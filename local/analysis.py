"""The numbers of one run of the local stack, read from its run directory.

What the figures mean (replica-seconds, scale events, reversals, failures) is defined once, in
comparison/, for the local stack and the simulator alike; this module reads what they are computed from:
the load tester's summary.json (with the replica series it read from Prometheus after the replay, one
point a second; loadtester/prometheus.py names the queries) and requests.csv, and the autoscaler's
decisions.jsonl. Where Prometheus has no worker samples, the `ready` count of the decisions is integrated
instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from comparison.events import decision_lines
from comparison.summary import run_figures


def read_decisions(path: Path) -> list[dict]:
    """The decision lines of the autoscaler's JSON-lines log (other events and stray lines skipped)."""
    if not path.is_file():
        return []
    return decision_lines(path.read_text(errors="replace").splitlines())


def analyse(run_dir: Path) -> dict:
    """Everything the reports show about one run, from the files in `run_dir`."""
    summary = json.loads((run_dir / "loadtest" / "summary.json").read_text())
    run = summary["run"]
    start, end = run["start_unix_s"], run["end_unix_s"]
    result = run_figures(summary, read_decisions(run_dir / "decisions.jsonl"), summary.get("replicas", {}), start,
                         end - start, workers_source="prometheus")
    result["replica_problems"] = run.get("prometheus_problems", [])
    return result
