"""The numbers the reports are built from: replica-seconds, scale events and reversals, and the targets'
PASS/MISS verdicts of the comparison."""

from __future__ import annotations

import pytest

from local.analysis import integrate_steps, read_decisions, reversals, scale_events
from local.compare import table_lines, targets


@pytest.mark.parametrize("points, start, end, expected", [
    ([[0, 1], [10, 2], [20, 1]], 0, 30, 40.0),
    ([[0, 2]], 0, 15, 30.0),
    ([[5, 1], [10, 2]], 0, 20, 30.0),           # the first value holds back to the start
    ([[0, 1], [10, 2], [20, 1]], 5, 15, 15.0),  # only the requested span
    ([[0, 1], [2, float("nan")], [4, 3]], 0, 6, 10.0),  # a NaN sample is skipped: 1 holds until 4
    ([], 0, 10, 0.0),
], ids=["steps", "constant", "late-first-sample", "sub-span", "nan-sample", "no-samples"])
def test_replica_seconds_integrate_the_worker_count_as_steps(points, start, end, expected):
    assert integrate_steps(points, start, end) == pytest.approx(expected)


@pytest.mark.parametrize("directions, expected", [
    ([], 0), (["up"], 0), (["up", "up", "down"], 1), (["up", "down", "up", "down"], 3), (["down", "down"], 0),
], ids=["none", "one", "up-up-down", "flapping", "down-down"])
def test_reversals_count_direction_flips(directions, expected):
    assert reversals([{"direction": d} for d in directions]) == expected


def test_scale_events_are_applied_changes_timed_from_the_replay_start(tmp_path):
    log = tmp_path / "decisions.jsonl"
    log.write_text("\n".join([
        '{"event":"config","policy":"slo"}',
        '{"time":"2026-01-01T00:00:01.000Z","event":"decision","direction":"hold","current":1,"desired":1,"ready":1}',
        '{"time":"2026-01-01T00:00:03.500Z","event":"decision","direction":"up","current":1,"desired":2,"ready":1,'
        '"reason":"scale-up: load"}',
        '{"time":"2026-01-01T00:00:04.000Z","event":"decision","direction":"up","current":2,"desired":3,"ready":1,'
        '"applied":false}',
        "not json at all",
        '{"time":"2026-01-01T00:00:09.000Z","event":"decision","direction":"down","current":2,"desired":1,"ready":2}',
    ]) + "\n")
    decisions = read_decisions(log)
    assert len(decisions) == 4
    start = 1767225600.0  # 2026-01-01T00:00:00Z
    events = scale_events(decisions, start)
    assert [(e["t_s"], e["direction"], e["from"], e["to"]) for e in events] == [(3.5, "up", 1, 2), (9.0, "down", 2, 1)]


def row(name: str, windows: float, replica_s: float, p95: float) -> dict:
    return {"run": name, "policy": name.split("-")[0], "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.2,
            "slo_windows": windows, "windows_met": round(windows * 30), "windows": 30, "errors": 0,
            "rejected_503": 0, "connection_losses": 0, "replica_seconds": replica_s,
            "mean_replicas": replica_s / 300, "scale_events": 2, "reversals": 1}


@pytest.mark.parametrize("slo, verdicts", [
    (row("slo", 1.0, 420, 300), ["PASS", "PASS", "PASS"]),
    (row("slo", 0.966, 420, 300), ["MISS", "PASS", "PASS"]),
    (row("slo", 1.0, 500, 300), ["PASS", "MISS", "PASS"]),   # 16.7% cheaper than hpa-50: not 25%
    (row("slo", 1.0, 420, 800), ["PASS", "PASS", "MISS"]),   # 20% below static-min: not 30%
], ids=["all-met", "windows-missed", "too-costly", "p95-not-low-enough"])
def test_targets_report_pass_or_miss_from_the_measured_rows(slo, verdicts):
    rows = {"static-min": row("static-min", 0.5, 300, 1000), "hpa-50": row("hpa-50", 1.0, 600, 250), "slo": slo}
    checks = targets(rows)
    assert [c["verdict"] for c in checks] == verdicts
    assert all(c["measured"] for c in checks)


def test_targets_say_n_a_when_a_baseline_was_not_run():
    checks = targets({"slo": row("slo", 1.0, 420, 300)})
    assert [c["verdict"] for c in checks] == ["PASS", "n/a", "n/a"]


def test_the_table_has_one_line_per_run_and_every_column():
    rows = {"static-min": row("static-min", 0.5, 300, 1000), "slo": row("slo", 1.0, 420, 300)}
    lines = table_lines(rows)
    assert len(lines) == 4
    assert lines[0].startswith("| run | p50 ms | p95 ms | p99 ms | windows in SLO")
    assert lines[3].startswith("| slo | 150 | 300 | 360 | 100.0% | 0 | 0 | 0 | 420 | 1.40 | 2 | 1 |")
