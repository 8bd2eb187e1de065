"""What local/analysis.py reads from a run directory: the decision log and the load tester's summary with
the replica series it recorded, turned into comparison/'s figures (the figures themselves are tested in
tests/test_comparison.py); and the demo report's one timeline, the load tester's."""

from __future__ import annotations

import json
import re

import pytest

from local.analysis import analyse, read_decisions


def test_the_decision_log_is_read_skipping_other_events_and_stray_lines(tmp_path):
    log = tmp_path / "decisions.jsonl"
    log.write_text("\n".join([
        '{"event":"config","policy":"slo"}',
        '{"time":"2026-01-01T00:00:01.000Z","event":"decision","direction":"hold","current":1,"desired":1,"ready":1}',
        "not json at all",
        '{"time":"2026-01-01T00:00:09.000Z","event":"decision","direction":"down","current":2,"desired":1,"ready":2}',
    ]) + "\n")
    assert [d["direction"] for d in read_decisions(log)] == ["hold", "down"]
    assert read_decisions(tmp_path / "missing.jsonl") == []


START_UNIX_S = 1767225600.0  # 2026-01-01T00:00:00Z
# The series the load tester recorded in summary.json (loadtester/prometheus.py's queries).
SERIES = {"workers": [[0.0, 1.0], [30.0, 2.0]], "desired_replicas": [[0.0, 1.0], [29.0, 2.0]],
          "current_replicas": [[0.0, 1.0], [29.5, 2.0]]}


def write_run(run_dir, replicas: dict, problems: list[str]) -> None:
    """A run directory as the stack leaves it: the load tester's summary.json and the decision log."""
    (run_dir / "loadtest").mkdir()
    (run_dir / "loadtest" / "summary.json").write_text(json.dumps({
        "run": {"start_unix_s": START_UNIX_S, "end_unix_s": START_UNIX_S + 60, "prometheus_problems": problems},
        "requests": {"scheduled": 10, "ok": 9, "failed": 1, "errors": {"rejected_503": 1}},
        "latency_ms": {"p50": 1, "p95": 2, "p99": 3, "max": 4}, "throughput": {"duration_s": 60},
        "slo": {"slo_ms": 450, "window_s": 10, "windows": 6, "windows_met": 6, "window_attainment": 1.0,
                "request_attainment": 0.9},
        "windows": [], "per_second": {}, "replicas": replicas}))
    (run_dir / "decisions.jsonl").write_text(
        '{"time":"2026-01-01T00:00:00.000Z","event":"decision","direction":"hold","current":1,"desired":1,"ready":1}\n'
        '{"time":"2026-01-01T00:00:30.000Z","event":"decision","direction":"up","current":1,"desired":2,"ready":2}\n')


@pytest.mark.parametrize("replicas, problems, source", [
    (SERIES, [], "prometheus"),
    ({}, ["no samples"], "decisions"),
], ids=["the-load-testers-series", "no-prometheus-samples-costs-the-decisions-ready-count"])
def test_a_run_is_analysed_from_the_series_the_load_tester_recorded(tmp_path, replicas, problems, source):
    write_run(tmp_path, replicas, problems)
    result = analyse(tmp_path)
    assert result["replicas"] == replicas and result["replica_problems"] == problems
    assert (result["replica_seconds"], result["replica_seconds_source"]) == (90.0, source)
    assert (result["scale_ups"], result["rejected_503"]) == (1, 1)


def test_the_demo_report_shows_one_timeline_the_load_testers(tmp_path):
    from local.config import Options
    from local.machine import describe_machine
    from local.report import TIMELINE, write_demo_report
    from planning.sizing import derive

    write_run(tmp_path, SERIES, [])
    result = dict(analyse(tmp_path), name="slo", plan={"policy": "slo", "min_replicas": 1, "max_replicas": 2,
                                                       "initial_replicas": 1})
    sizing = derive(None, quick=False, max_replicas=2, worker_capacity_rps=50.0)
    report = write_demo_report(tmp_path, Options(max_replicas=2), sizing, result, describe_machine(), "wl.txt (60 s)",
                               "python -m local demo").read_text()
    assert TIMELINE == "loadtest/timeline.png"
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report) == [TIMELINE]


def test_a_comparison_writes_the_shared_files_and_its_report(tmp_path):
    from comparison.summary import run_figures
    from local.config import Options
    from local.machine import describe_machine
    from local.report import write_comparison
    from planning.sizing import derive

    start = 1767225600.0

    def run(name: str, policy: str, met: int, workers: float) -> dict:
        summary = {"requests": {"scheduled": 100, "ok": 100, "failed": 0, "errors": {}},
                   "latency_ms": {"p50": 40.0, "p95": 90.0, "p99": 120.0, "max": 150.0},
                   "slo": {"window_s": 10.0, "windows": 6, "windows_met": met, "window_attainment": met / 6},
                   "throughput": {"duration_s": 60.0},
                   "windows": [{"start_s": 10.0 * k, "requests": 10, "p95_ms": 90.0, "error_rate": 0.0,
                                "meets_slo": k < met} for k in range(6)],
                   "per_second": {"second": list(range(60)), "offered_rps": [2] * 60, "achieved_rps": [2] * 60}}
        result = run_figures(summary, [], {"workers": [[0.0, workers]]}, start, 60.0)
        return dict(result, name=name, run_dir_name=name, plan={"policy": policy})

    results = {"hpa-50": [run("hpa-50", "hpa", 6, 2.0)], "kpa": [run("kpa", "kpa", 4, 1.0)],
               "slo": [run("slo", "slo", 6, 1.0)]}
    sizing = derive(None, quick=False, max_replicas=2, worker_capacity_rps=50.0)
    outcome = write_comparison(tmp_path, Options(max_replicas=2), sizing, results, describe_machine(), "wl.txt (60 s)",
                               "python -m local compare")
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert list(doc["runs"]) == ["hpa-50", "kpa", "slo"] and doc["runs"]["kpa"]["policy"] == "kpa"
    assert [t["verdict"] for t in doc["targets"]] == ["PASS", "PASS", "n/a", "PASS"]   # no static-min run
    report = (tmp_path / "report.md").read_text()
    assert "\n".join(outcome["table"]) in report and "| kpa | " in report
    assert (tmp_path / "comparison.png").stat().st_size > 10_000 and (tmp_path / "comparison.csv").is_file()
