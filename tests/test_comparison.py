"""comparison/: the figures, table, targets and plots that the local stack and the simulator share.

Pure functions on hand-made rows and runs: replica-seconds, scale events and reversals, the median and
range over repeats, the table, every goal's PASS / MISS / n/a, the run record (run.json) that the local
stack writes and the calibration reads, and that the package stands on its own.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from comparison.events import decision_lines, integrate_steps, reversals, scale_events
from comparison.plots import COLORS, colors_for, plot_comparison
from comparison.run_record import RUN_RECORD_VERSION, RunRecord, RunRecordError
from comparison.summary import run_figures
from comparison.table import aggregate, row_of, table_lines, write_comparison
from comparison.targets import LOCAL_GOALS, SIM_GOALS, indistinguishable, targets

REPO = Path(__file__).resolve().parent.parent
START = 1767225600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("points, start, end, expected", [
    ([[0, 1], [10, 2], [20, 1]], 0, 30, 40.0),
    ([[0, 2]], 0, 15, 30.0),
    ([[5, 1], [10, 2]], 0, 20, 30.0),           # the first value holds back to the start
    ([[0, 1], [10, 2], [20, 1]], 5, 15, 15.0),  # only the requested span
    ([[0, 1], [2, float("nan")], [4, 3]], 0, 6, 10.0),  # a NaN sample is skipped: 1 holds until 4
    ([[10, 2], [0, 1]], 0, 20, 30.0),           # out of order: sorted by time
    ([[0, 1], [5, 3], [5, 2]], 0, 10, 15.0),    # two at one time: the later-recorded holds
    ([], 0, 10, 0.0),
], ids=["steps", "constant", "late-first-sample", "sub-span", "nan-sample", "unsorted", "same-time", "no-samples"])
def test_replica_seconds_integrate_the_worker_count_as_steps(points, start, end, expected):
    assert integrate_steps(points, start, end) == pytest.approx(expected)


@pytest.mark.parametrize("directions, expected", [
    ([], 0), (["up"], 0), (["up", "up", "down"], 1), (["up", "down", "up", "down"], 3), (["down", "down"], 0),
], ids=["none", "one", "up-up-down", "flapping", "down-down"])
def test_reversals_count_direction_flips(directions, expected):
    assert reversals([{"direction": d} for d in directions]) == expected


DECISION_LOG = [
    '{"event":"config","policy":"slo"}',
    '{"time":"2026-01-01T00:00:01.000Z","event":"decision","direction":"hold","current":1,"desired":1,"ready":1}',
    '{"time":"2026-01-01T00:00:03.500Z","event":"decision","direction":"up","current":1,"desired":2,"ready":1,'
    '"reason":"scale-up: load"}',
    '{"time":"2026-01-01T00:00:04.000Z","event":"decision","direction":"up","current":2,"desired":3,"ready":1,'
    '"applied":false}',
    "not json at all",
    '{"broken json',
    '{"time":"2026-01-01T00:00:09.000Z","event":"decision","direction":"down","current":2,"desired":1,"ready":2}',
]


def test_scale_events_are_applied_changes_timed_from_the_replay_start():
    decisions = decision_lines(DECISION_LOG)
    assert len(decisions) == 4
    events = scale_events(decisions, START)
    assert [(e["t_s"], e["direction"], e["from"], e["to"]) for e in events] == [(3.5, "up", 1, 2), (9.0, "down", 2, 1)]


def load_summary(ok=95, failed=None, windows=10, met=9) -> dict:
    errors = {"rejected_503": 3, "conn_refused": 2, "timeout": 0} if failed is None else failed
    n = ok + sum(errors.values())
    return {"requests": {"scheduled": n, "ok": ok, "failed": n - ok, "errors": errors},
            "latency_ms": {"p50": 40.0, "p95": 200.0, "p99": 300.0, "max": 400.0},
            "slo": {"window_s": 10.0, "windows": windows, "windows_met": met, "window_attainment": met / windows},
            "throughput": {"duration_s": 100.0}, "windows": [], "per_second": {}}


@pytest.mark.parametrize("replicas, source, replica_s", [
    ({"workers": [[0, 1], [50, 3]]}, "prometheus", 200.0),
    ({}, "decisions", 1 * 9 + 2 * 91),           # the decisions' ready count: 1 from the start, 2 from 9 s
], ids=["from-the-workers-series", "from-the-decisions"])
def test_run_figures_count_failures_events_and_cost(replicas, source, replica_s):
    result = run_figures(load_summary(), decision_lines(DECISION_LOG), replicas, START, 100.0)
    assert (result["errors_total"], result["rejected_503"], result["connection_losses"]) == (5, 3, 2)
    assert (result["scale_ups"], result["scale_downs"], result["reversals"], result["decisions"]) == (1, 1, 1, 4)
    assert (result["replica_seconds"], result["replica_seconds_source"]) == (replica_s, source)
    assert result["mean_replicas"] == pytest.approx(replica_s / 100)
    row = row_of("slo-1", "slo", result)
    assert (row["run"], row["policy"], row["failed"], row["windows_in_slo"], row["replica_seconds"]) == \
        ("slo-1", "slo", 5, 0.9, replica_s)


def row(name: str, windows: float, replica_s: float, p95: float) -> dict:
    return {"run": name, "policy": name.split("-")[0], "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.2,
            "windows_in_slo": windows, "windows_met": round(windows * 30), "windows": 30, "failed": 0,
            "rejected_503": 0, "connection_losses": 0, "replica_seconds": replica_s,
            "mean_replicas": replica_s / 300, "scale_events": 2, "reversals": 1}


BASELINES = {"static-min": row("static-min", 0.5, 300, 1000), "hpa-50": row("hpa-50", 1.0, 600, 250),
             "kpa": row("kpa", 0.9, 450, 300), "oracle": row("oracle", 1.0, 350, 200)}


@pytest.mark.parametrize("slo, verdicts", [
    (row("slo", 1.0, 420, 300), ["PASS", "PASS", "PASS", "PASS"]),
    (row("slo", 0.966, 420, 300), ["MISS", "PASS", "PASS", "PASS"]),
    (row("slo", 1.0, 500, 300), ["PASS", "MISS", "PASS", "MISS"]),   # 16.7% cheaper than hpa-50; dearer than kpa
    (row("slo", 1.0, 420, 800), ["PASS", "PASS", "MISS", "PASS"]),   # 20% below static-min: not 30%
    (row("slo", 0.9, 420, 300), ["MISS", "PASS", "PASS", "MISS"]),   # as many windows missed as kpa
], ids=["all-met", "windows-missed", "too-costly", "p95-not-low-enough", "no-better-than-kpa"])
def test_the_local_targets_report_pass_or_miss_from_the_measured_rows(slo, verdicts):
    checks = targets({**BASELINES, "slo": slo}, LOCAL_GOALS)
    assert [c["goal"] for c in checks] == list(LOCAL_GOALS)
    assert [c["verdict"] for c in checks] == verdicts
    assert all(c["measured"] for c in checks)


@pytest.mark.parametrize("slo, oracle_s, verdicts", [
    (row("slo", 1.0, 420, 300), 360, ["PASS", "PASS", "PASS", "PASS"]),     # 1.17x the oracle
    (row("slo", 1.0, 420, 300), 350, ["PASS", "PASS", "PASS", "PASS"]),     # 1.2x exactly
    (row("slo", 1.0, 420, 300), 300, ["PASS", "PASS", "PASS", "MISS"]),     # 1.4x
    (row("slo", 1.0, 455, 300), 350, ["PASS", "MISS", "MISS", "MISS"]),     # 1.3x; 24% below hpa-50
], ids=["near-the-oracle", "at-1.2x", "far-from-the-oracle", "at-1.3x"])
def test_the_simulators_four_goals(slo, oracle_s, verdicts):
    rows = {**BASELINES, "oracle": row("oracle", 1.0, oracle_s, 200), "slo": slo}
    checks = targets(rows, SIM_GOALS)
    assert [c["goal"] for c in checks] == ["windows", "cost_vs_hpa_50", "beats_kpa", "near_oracle"]
    assert [c["verdict"] for c in checks] == verdicts


def test_against_a_kpa_that_missed_no_window_none_missed_is_enough():
    rows = {"kpa": row("kpa", 1.0, 450, 300), "slo": row("slo", 1.0, 420, 300)}
    check = targets(rows, ("beats_kpa",))[0]
    assert check["verdict"] == "PASS" and check["measured"].startswith("0 vs 0 windows missed, 420 vs 450")


def test_the_targets_say_n_a_when_a_baseline_was_not_run():
    assert [c["verdict"] for c in targets({"slo": row("slo", 1.0, 420, 300)}, SIM_GOALS)] == ["PASS"] + ["n/a"] * 3
    assert [c["verdict"] for c in targets({"hpa-50": BASELINES["hpa-50"]})] == ["n/a"]


def test_repeats_give_the_median_and_the_range_and_say_what_they_cannot_tell_apart():
    slo = aggregate([row("slo", 1.0, 420, 300), row("slo", 0.9, 440, 200), row("slo", 0.966, 430, 260)])
    hpa = aggregate([row("hpa-50", 0.95, 600, 250), row("hpa-50", 1.0, 610, 280)])
    assert (slo["repeats"], slo["p95_ms"], slo["spread"]["p95_ms"]) == (3, 260, [200, 300])
    assert hpa["replica_seconds"] == 605
    noise = indistinguishable({"slo": slo, "hpa-50": hpa})
    assert noise == ["slo vs hpa-50: not distinguishable on p95, windows in SLO (their ranges over 3 runs overlap)"]
    check = targets({"slo": slo, "hpa-50": hpa}, ("cost_vs_hpa_50",))[0]
    assert check["verdict"] == "PASS" and "not distinguishable" not in check["measured"]


def test_the_table_has_one_line_per_run_and_every_column():
    rows = {"static-min": row("static-min", 0.5, 300, 1000), "slo": row("slo", 1.0, 420, 300)}
    lines = table_lines(rows)
    assert len(lines) == 4
    assert lines[0].startswith("| run | p50 ms | p95 ms | p99 ms | windows in SLO")
    assert lines[3].startswith("| slo | 150 | 300 | 360 | 100.0% | 0 | 0 | 0 | 420 | 1.40 | 2 | 1 |")
    with_oracle = table_lines({**rows, "oracle": row("oracle", 1.0, 350, 200)})
    assert with_oracle[0].endswith("| replica-s vs oracle |") and with_oracle[3].endswith("| 1.20x |")


def test_the_files_hold_the_rows_targets_and_every_repeat(tmp_path):
    per_run = {"hpa-50": [row("hpa-50", 1.0, 600, 250)], "slo": [row("slo", 1.0, 420, 300), row("slo", 0.9, 440, 200)]}
    outcome = write_comparison(tmp_path, per_run, {"trace": "t"})
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert list(doc) == ["trace", "runs", "repeats", "targets", "indistinguishable"]
    assert doc["runs"]["slo"]["repeats"] == 2 and doc["repeats"] == per_run
    assert doc["targets"] == outcome["targets"]
    assert len((tmp_path / "comparison.csv").read_text().splitlines()) == 4
    assert (tmp_path / "comparison.md").read_text().startswith("\n".join(outcome["table"]))


def test_every_policy_of_both_comparisons_has_its_own_colour():
    from local.config import COMPARE_CHOICES
    from planning.runs import SIM_RUNS as POLICIES

    assert set(COMPARE_CHOICES) | set(POLICIES) <= set(COLORS)
    assert len(set(COLORS.values())) == len(COLORS)
    colors = colors_for(["slo", "hpa-70", "static-3", "kpa"])
    assert len(set(colors.values())) == 4 and not {colors["hpa-70"], colors["static-3"]} & set(COLORS.values())


def test_the_comparison_plot_draws_runs_of_either_source(tmp_path):
    result = run_figures(load_summary(), decision_lines(DECISION_LOG), {"workers": [[0, 1], [50, 3]]}, START, 100.0)
    result["windows"] = [{"start_s": 10.0 * k, "requests": 10, "p95_ms": 100.0 + k, "meets_slo": k != 3}
                         for k in range(10)]
    result["per_second"] = {"second": list(range(100)), "offered_rps": [1] * 100, "achieved_rps": [1] * 100}
    plot_comparison(tmp_path / "comparison.png", {"slo": result, "oracle": result}, 450, "two runs")
    assert (tmp_path / "comparison.png").stat().st_size > 10_000


def _record(**change) -> dict:
    """A run.json as the local stack writes it (reduced to what the record requires, plus one other figure)."""
    data = {"version": 1, "name": "slo", "plan": {"name": "slo", "min_replicas": 1, "max_replicas": 2, "scale": 1.5},
            "sizing": {"max_queue": 24}, "autoscaler_env": {"POLICY": "slo"}, "requests": {"scheduled": 10},
            "windows": [{"start_s": 0.0, "p95_ms": 50.0, "meets_slo": True}], "replica_seconds": 12.5,
            "events": [], "latency_ms": {"p95": 50.0}}
    data.update(change)
    return {k: v for k, v in data.items() if v is not None}


def test_a_run_record_round_trips_its_fields_and_every_other_figure():
    record = RunRecord.from_dict(_record(), "x/run.json")
    assert (record.name, record.replica_seconds, record.version) == ("slo", 12.5, RUN_RECORD_VERSION)
    assert record.figures == {"latency_ms": {"p95": 50.0}}
    assert record.to_dict() == {**_record(), "replicas": {}}   # an absent series is read as none
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict())), "x/run.json") == record


def test_a_run_record_without_a_version_is_version_1():
    assert RunRecord.from_dict(_record(version=None), "old/run.json").version == 1


@pytest.mark.parametrize("change, words", [
    ({"windows": None}, "x/run.json: missing windows"),
    ({"plan": {"name": "slo", "min_replicas": 1, "scale": 1.0}}, "x/run.json: missing plan.max_replicas"),
    ({"plan": {"name": "slo", "min_replicas": 1, "max_replicas": 2.5, "scale": 1.0}},
     "x/run.json: plan.max_replicas=2.5 must be an integer"),
    ({"replica_seconds": "12"}, "x/run.json: replica_seconds='12' must be a number"),
    ({"replica_seconds": True}, "x/run.json: replica_seconds=True must be a number"),
    ({"sizing": []}, "x/run.json: sizing (a list) must be a JSON object"),
    ({"windows": [{"start_s": 0.0}]}, "x/run.json: windows must be a list of {start_s, p95_ms, meets_slo, ...}"),
    ({"version": 99}, "x/run.json: version 99 is not one this reader knows"),
    ({"version": "1"}, "x/run.json: version='1' must be an integer"),
], ids=["missing-field", "missing-plan-field", "plan-field-type", "text-number", "bool-number", "list-object",
        "window-keys", "newer-version", "version-type"])
def test_a_bad_run_record_names_the_file_and_the_field(change, words):
    with pytest.raises(RunRecordError, match=re.escape(words)):
        RunRecord.from_dict(_record(**change), "x/run.json")


@pytest.mark.parametrize("content, words", [
    (None, "no such file (a run's figures)"),
    ("{", "cannot read a run's figures"),
    ("[]", "a run's figures is not a JSON object"),
], ids=["absent", "bad-json", "not-an-object"])
def test_reading_a_run_record_names_the_file(tmp_path, content, words):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RunRecordError, match=re.escape(f"{path}: {words}")):
        RunRecord.read(path)


def test_a_written_run_record_reads_back(tmp_path):
    record = RunRecord.from_dict(_record(), "x/run.json")
    record.write(tmp_path / "run.json")
    assert RunRecord.read(tmp_path / "run.json") == record


def test_the_package_imports_neither_the_local_stack_nor_the_simulator():
    imported = set()
    for path in (REPO / "comparison").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"local", "sim", "bench", "autoscaler", "inference"}, imported
