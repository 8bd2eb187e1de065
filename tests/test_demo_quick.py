"""`python -m local demo --quick` end to end: the real stack (gunicorn with random weights, Prometheus, the
autoscaler with the gunicorn scaler and the slo policy, the load tester) on free 127.0.0.1 ports, over the
90 s quick slice of wl.txt with its burst. One run serves the whole module; each test checks one promise.
"""

from __future__ import annotations

import json
import re

import pytest

from local.analysis import CONNECTION_LOSSES, consistency_problems
from local.config import QUICK_SLICE
from local.processes import listening, pid_alive
from loadtester import read_requests_csv
from tests.support import PYTHON, free_port, start_child, wait_until

pytestmark = pytest.mark.slow

# The burst of wl.txt (seconds 120-164) in the quick slice's time.
BURST_START_S = 120 - QUICK_SLICE[0]
BURST_END_S = 165 - QUICK_SLICE[0]
# Start-up, a 90 s replay, the report and the shutdown take about 2 minutes; a busy machine may take longer.
RUN_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-quick")
    ports = {"service": free_port(), "prometheus": free_port(), "autoscaler": free_port()}
    while len(set(ports.values())) < 3:
        ports["autoscaler"] = free_port()
    out = tmp / "report"
    argv = [PYTHON, "-m", "local", "demo", "--quick", "--out", str(out), "--service-port", str(ports["service"]),
            "--prometheus-port", str(ports["prometheus"]), "--autoscaler-port", str(ports["autoscaler"])]
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
    "report.md", "timeline.png", "decisions.jsonl", "run.json", "trace-quick.txt", "loadtest/requests.csv",
    "loadtest/summary.json", "loadtest/timeline.png", "logs/gunicorn.log", "logs/prometheus.log",
    "logs/autoscaler.log", "logs/loadtester.log", "prometheus/prometheus.yml",
], ids=lambda p: p)
def test_report_files_are_present(run, path):
    file = run["out"] / path
    # A quiet part may log nothing to stderr (the autoscaler's decisions go to decisions.jsonl).
    assert file.is_file() and (file.stat().st_size > 0 or path.startswith("logs/"))
    if path.endswith(".png"):
        assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_matches_requests_csv(run):
    assert consistency_problems(run["out"]) == []


def test_report_and_console_show_the_measured_numbers(run):
    summary = json.loads((run["out"] / "loadtest" / "summary.json").read_text())
    result = run["result"]
    report = (run["out"] / "report.md").read_text()
    req = summary["requests"]
    assert f"| requests scheduled / ok | {req['scheduled']} / {req['ok']} |" in report
    assert f"{summary['slo']['windows_met']}/{summary['slo']['windows']}" in report
    assert "![timeline](timeline.png)" in report
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
    assert result["duration_s"] * 1 <= result["replica_seconds"] + 2 <= result["duration_s"] * 2 + 4
    assert 1 < result["mean_replicas"] < 2
