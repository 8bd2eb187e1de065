"""`python -m local demo --quick` end to end: the real stack (gunicorn with random weights, Prometheus, the
autoscaler with the gunicorn scaler and the slo policy, the load tester) on free 127.0.0.1 ports, over the
90 s quick slice of wl.txt with its burst. One run serves the whole module; each test checks one promise.

The run measures one worker first (a fresh calibration cache), so it is sized for the machine as it is
now, busy or not, and every assertion is relative to that measurement: none names a rate or a latency.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

import pytest

from comparison.summary import CONNECTION_LOSSES
from loadtester import read_requests_csv, summarize
from loadtester.workload import load_workload
from local.config import QUICK_SLICE
from processes.children import pid_alive
from processes.net import listening
from tests.support import PYTHON, REPO, free_port, start_child, start_prometheus, wait_until

pytestmark = pytest.mark.slow

# The burst of wl.txt (seconds 120-164) in the quick slice's time.
BURST_START_S = 120 - QUICK_SLICE[0]
BURST_END_S = 165 - QUICK_SLICE[0]
# The calibration (~45 s), start-up, a 90 s replay, the report and the shutdown take about 3 minutes; a busy
# or slow machine may take twice that.
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-quick")
    ports = {"service": free_port(), "prometheus": free_port(), "autoscaler": free_port()}
    while len(set(ports.values())) < 3:
        ports["autoscaler"] = free_port()
    out = tmp / "report"
    argv = [PYTHON, "-m", "local", "demo", "--quick", "--out", str(out), "--service-port", str(ports["service"]),
            "--prometheus-port", str(ports["prometheus"]), "--autoscaler-port", str(ports["autoscaler"]),
            "--calibration-dir", str(tmp / "calibration")]
    child = start_child("local-demo", argv, tmp / "logs")
    try:
        wait_until(lambda: not child.alive(), timeout_s=RUN_TIMEOUT_S, interval_s=1.0, what="the quick demo to finish")
    finally:
        child.stop()
    console = child.log()
    assert child.proc.returncode == 0, console[-5000:]
    yield {"out": out, "ports": ports, "console": console, "result": json.loads((out / "run.json").read_text())}


def test_it_scales_up_during_the_burst(run):
    ups = [e for e in run["result"]["events"] if e["direction"] == "up"]
    assert any(BURST_START_S - 5 <= e["t_s"] <= BURST_END_S for e in ups), run["result"]["events"]
    assert run["result"]["max_workers"] >= 2


def test_it_scales_back_down_after_the_burst(run):
    events = run["result"]["events"]
    last_up = max(e["t_s"] for e in events if e["direction"] == "up")
    downs = [e for e in events if e["direction"] == "down" and e["t_s"] > last_up]
    assert downs, events
    # Ready workers at the end of the replay: back at the minimum.
    workers = run["result"]["replicas"]["workers"]
    assert workers[-1][1] == 1, workers[-10:]


def test_no_request_failed_and_none_was_lost_across_the_scale_down(run):
    table = read_requests_csv(run["out"] / "loadtest" / "requests.csv")
    assert len(table) > 300
    kinds = {str(k) for k in table.kind}
    assert kinds == {"ok"}, {k: int((table.kind == k).sum()) for k in kinds}
    assert not any(500 <= s < 600 for s in table.status)
    assert not set(CONNECTION_LOSSES) & kinds
    down_at = [e["t_s"] for e in run["result"]["events"] if e["direction"] == "down"][0]
    # Requests scheduled while the removed worker drained: each got its 200.
    during = (table.scheduled_s > down_at - 5) & (table.scheduled_s < down_at + 10)
    assert during.sum() > 0 and set(table.status[during]) == {200}


def test_every_process_it_started_is_gone(run):
    stop = run["result"]["stop"]
    assert stop["processes_left"] == []
    leaders = [stop[name]["pid"] for name in ("loadtester", "autoscaler", "gunicorn", "prometheus")]
    gunicorn_log = (run["out"] / "logs" / "gunicorn.log").read_text()
    workers = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", gunicorn_log)]
    assert len(workers) >= 2  # the first worker and the one the scale-up added
    assert [pid for pid in leaders + workers if pid_alive(pid)] == []
    assert list((run["out"] / "state").glob("gunicorn.pid.*.ready")) == []


def test_no_port_is_left_listening(run):
    assert stop_ports(run) == []
    assert run["result"]["stop"]["ports_listening"] == []


def stop_ports(run) -> list[int]:
    return [p for p in run["ports"].values() if listening(p)]


@pytest.mark.parametrize("path", [
    "report.md", "decisions.jsonl", "run.json", "trace-quick.txt", "loadtest/requests.csv",
    "loadtest/summary.json", "loadtest/timeline.png", "loadtest/replicas.csv", "logs/gunicorn.log",
    "logs/prometheus.log", "logs/autoscaler.log", "logs/loadtester.log", "prometheus/prometheus.yml",
], ids=lambda p: p)
def test_report_files_are_present(run, path):
    file = run["out"] / path
    # A quiet part may log nothing to stderr (the autoscaler's decisions go to decisions.jsonl).
    assert file.is_file() and (file.stat().st_size > 0 or path.startswith("logs/"))
    if path.endswith(".png"):
        assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_run_has_one_timeline_with_the_replica_series(run):
    """The stack draws no picture of its own and fetches no series of its own: the report links the load
    tester's timeline, and run.json holds the series the load tester recorded."""
    assert not (run["out"] / "timeline.png").exists()
    summary = json.loads((run["out"] / "loadtest" / "summary.json").read_text())
    assert summary["run"]["files"].count("timeline.png") == 1
    assert set(summary["replicas"]) == {"workers", "desired_replicas", "current_replicas"}
    assert run["result"]["replicas"] == summary["replicas"]
    assert f"(timeline: {run['out'] / 'loadtest' / 'timeline.png'})" in run["console"]


def test_summary_matches_requests_csv(run):
    assert consistency_problems(run["out"]) == []


def test_report_and_console_show_the_measured_numbers(run):
    summary = json.loads((run["out"] / "loadtest" / "summary.json").read_text())
    result = run["result"]
    report = (run["out"] / "report.md").read_text()
    req = summary["requests"]
    assert f"| requests scheduled / ok | {req['scheduled']} / {req['ok']} |" in report
    assert f"{summary['slo']['windows_met']}/{summary['slo']['windows']}" in report
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report) == ["loadtest/timeline.png"]
    assert "AMD" in report or "Intel" in report or "CPUs" in report
    console = run["console"]
    assert re.search(rf"^scheduled +{req['scheduled']}$", console, re.M)
    assert (f"autoscaler: {result['decisions']} decisions, {result['scale_ups']} scale-ups, "
            f"{result['scale_downs']} scale-downs") in console
    decisions = [json.loads(line) for line in (run["out"] / "decisions.jsonl").read_text().splitlines()
                 if line.startswith("{") and '"event":"decision"' in line]
    assert len(decisions) == result["decisions"] > 30


def test_replica_seconds_lie_between_the_bounds(run):
    result = run["result"]
    top = result["plan"]["max_replicas"]
    assert result["duration_s"] * 1 <= result["replica_seconds"] + 2 <= result["duration_s"] * top + 4
    assert 1 < result["mean_replicas"] < top


def test_the_run_is_sized_from_a_measurement_made_now(run):
    sizing = run["result"]["sizing"]
    probe = sizing["probe"]
    assert sizing["source"].startswith("measured now")
    assert list((run["out"].parent / "calibration").glob("capacity-*.json"))
    # The SLO, the capacity estimate and the trace peak all follow from what was measured.
    assert probe["saturation_rps"] > 0 and probe["startup_s"] and len(probe["steps"]) == 6
    assert sizing["worker_capacity_rps"] == probe["saturation_rps"]
    assert 0 < sizing["capacity_within_slo_rps"] < probe["saturation_rps"]
    assert sizing["peak_rps"] < probe["saturation_rps"]
    summary = json.loads((run["out"] / "loadtest" / "summary.json").read_text())
    assert summary["slo"]["slo_ms"] == sizing["slo_ms"]
    env = run["result"]["autoscaler_env"]
    assert float(env["CAPACITY_RPS_PER_REPLICA"]) == sizing["capacity_within_slo_rps"]
    assert float(env["SLO_P95_MS"]) == sizing["slo_ms"]
    report = (run["out"] / "report.md").read_text()
    assert "## How the run was sized" in report and "offered req/s | ok req/s | p50 ms" in report


def test_the_console_shows_a_live_status_line_while_it_replays(run):
    # Not a terminal here: plain lines every 10 s, each with the run's progress and the replicas.
    lines = [line for line in run["console"].splitlines() if line.startswith("local: slo | ")]
    progress = [line for line in lines if re.search(r"\| \d+/90s \| offered [\d.]+/s ok [\d.]+/s \| p95 ", line)]
    assert len(progress) >= 5, lines
    assert all("ready/" in line for line in progress)
    assert any("last up 1->2" in line for line in progress), progress


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


EXPORT_STEP_S = 5
LOCAL_SCRAPE_S = 1.0   # prometheus/prometheus-local.yml


def test_the_replay_exported_from_its_prometheus_matches_what_was_replayed(run, tmp_path):
    """`python -m loadtester export-trace` round trip through the local stack: the requests the quick demo
    replayed, read back from the TSDB its Prometheus wrote (a second Prometheus on a copy of it, scraping
    nothing), match the replayed counts within Poisson noise, step by step.

    Per 5 s step, the exported count (rate x step) and the requests the load tester sent are two counts of
    about Lambda requests each: they may differ by 5 sqrt(2 Lambda), plus what a moving rate shifts across
    the step's edges (the service counts a request when it answers it, up to a scrape interval later than
    the step it was sent in, plus its latency): the trace's rate range over the step and the second before
    it, times (the scrape interval + the run's p99 latency). The same export moved later than that fails.
    """
    summary = json.loads((run["out"] / "loadtest" / "summary.json").read_text())
    start_s, end_s = int(summary["run"]["start_unix_s"]), int(summary["run"]["end_unix_s"])
    data = run["out"] / "prometheus" / "data"
    assert data.is_dir()
    shutil.copytree(data, tmp_path / "prometheus" / "data")
    prometheus = start_prometheus(tmp_path, "global:\n  scrape_interval: 1s\nscrape_configs: []\n")
    out = tmp_path / "exported.txt"
    try:
        done = subprocess.run([PYTHON, "-m", "loadtester", "export-trace", "--prometheus", prometheus.extra["url"],
                               "--start", str(start_s), "--end", str(end_s), "--step-s", str(EXPORT_STEP_S),
                               "--scrape-interval-s", f"{LOCAL_SCRAPE_S:g}", "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        prometheus.stop()
    assert done.returncode == 0, done.stderr
    exported = np.array(load_workload(out).rates_rps)
    table = read_requests_csv(run["out"] / "loadtest" / "requests.csv")
    offset_s = summary["run"]["start_unix_s"] - start_s
    sent = np.bincount(np.floor(np.asarray(table.sent_s) + offset_s).astype(int), minlength=len(exported))
    trace = np.array(load_workload(run["out"] / "trace-quick.txt").rates_rps) * summary["run"]["trace_scale"]["scale"]
    trace = np.concatenate([[trace[0]], trace, np.full(max(0, len(exported) - len(trace)), trace[-1])])
    shift_s = LOCAL_SCRAPE_S + summary["latency_ms"]["p99"] / 1000.0
    steps = len(exported) // EXPORT_STEP_S
    assert steps >= 15   # the 90 s replay, whole steps

    def problems(rates: np.ndarray) -> list[str]:
        found = []
        for k in range(steps):
            seconds = slice(k * EXPORT_STEP_S, (k + 1) * EXPORT_STEP_S)
            replayed, got = sent[seconds].sum(), rates[seconds].sum()
            around = trace[k * EXPORT_STEP_S:(k + 1) * EXPORT_STEP_S + 1]   # (trace[0] is the second before)
            tolerance = 5 * math.sqrt(2 * max(replayed, 1)) + (around.max() - around.min()) * shift_s
            if abs(got - replayed) > tolerance:
                found.append(f"step {k}: exported {got:.1f}, replayed {replayed}, tolerance {tolerance:.1f}")
        return found

    assert problems(exported) == []
    # The check has teeth: the same export later than the tolerance allows for (a step more than the scrape
    # interval and the p99 latency) fails it: the burst's edges move.
    late_steps = math.ceil(shift_s / EXPORT_STEP_S) + 1
    assert problems(np.roll(exported, late_steps * EXPORT_STEP_S)) != []
    assert abs(exported.sum() - sent[:len(exported)].sum()) <= 5 * math.sqrt(2 * sent.sum()) + trace.max() * shift_s
