"""The capacity probe: what it reads off a latency curve (pure), and what it measures through real HTTP.

The measured cases run against the stub server in capacity mode (loadtester/stub_server.py): one FIFO
server taking exactly 1/capacity s per request, so the truth is known and the probe must find it. The real
service is probed by the local stack's calibration (tests/test_demo_quick.py).
"""

from __future__ import annotations

import json
import math
import re
import subprocess

import pytest

from loadtester.capacity_report import MAX_SUSTAINED_FRACTION, CapacityReport, Step
from support import PYTHON, REPO, free_port, start_stub_server

SUMMARY = re.compile(r"^capacity: (?P<sat>[\d.]+) req/s at saturation, (?P<slo>[\d.]+) req/s within the SLO$")


def report_with(steps: list[tuple[float, float, int]], saturation: float = 100.0) -> CapacityReport:
    """Steps as (offered req/s, p95 ms, failed)."""
    return CapacityReport(
        url="http://x/predict", replicas=1, saturation_rps=saturation, saturation_concurrency=8, unloaded_p50_ms=10,
        unloaded_p95_ms=12, model_ms_at_saturation=None, max_batch_size=None, sweep=[], load_generator_cpu=0.0,
        duration_s=1.0, steps=[Step(rate, rate, 100, failed, p95 / 2, p95, p95, p95 / 2) for rate, p95, failed in steps])


@pytest.mark.parametrize("steps, slo_ms, expected", [
    ([(30, 50, 0), (50, 80, 0), (80, 300, 0)], 200, 50 + 30 * (200 - 80) / (300 - 80)),
    ([(30, 50, 0), (50, 80, 0), (80, 150, 0)], 200, 80),
    ([(30, 50, 0), (50, 80, 0), (80, 150, 0), (95, 190, 0)], 200, MAX_SUSTAINED_FRACTION * 100),
    ([(30, 300, 0)], 150, 15),
    ([(30, 50, 0), (50, 80, 3), (80, 90, 0)], 200, 30),
    ([(30, 50, 0), (50, math.inf, 4)], 200, 30),
    ([], 200, 0),
], ids=["interpolated-between-steps", "every-step-met", "capped-below-saturation", "even-the-first-missed",
        "failures-miss-whatever-the-p95", "failed-step-has-no-finite-p95", "no-steps"])
def test_the_within_slo_rate_is_read_off_the_curve(steps, slo_ms, expected):
    assert report_with(steps).within_slo_rps(slo_ms) == pytest.approx(expected)


def test_recommendations_use_littles_law_at_the_within_slo_rate():
    report = report_with([(30, 50, 0), (50, 80, 0), (80, 300, 0)])
    rec = report.recommendations(80)
    assert rec["capacity_rps_per_replica"] == 50
    assert rec["target_inflight_per_replica"] == pytest.approx(50 * 0.040)  # mean latency 40 ms at 50 req/s
    halved = CapacityReport(**{**report.__dict__, "replicas": 2}).recommendations(80)
    assert halved["capacity_rps_per_replica"] == 25


def test_a_report_survives_its_json_round_trip():
    report = report_with([(30, 50, 0), (50, math.inf, 4)])
    again = CapacityReport.from_dict(json.loads(json.dumps(report.as_dict(200))))
    assert again.steps == report.steps and again.within_slo_rps(200) == report.within_slo_rps(200)


def find_capacity(*args: str, script: bool = False, timeout_s: float = 180) -> subprocess.CompletedProcess:
    entry = ["loadtester/load_tester.py"] if script else ["-m", "loadtester"]
    return subprocess.run([PYTHON, *entry, "--find-capacity", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s)


@pytest.mark.slow
@pytest.mark.parametrize("capacity_rps", [40.0, 160.0], ids=["slow-replica", "fast-replica"])
def test_the_probe_finds_a_known_capacity_within_10_percent(tmp_path, capacity_rps):
    stub = start_stub_server(tmp_path, capacity_rps=capacity_rps, queue_limit=1000)
    try:
        out = tmp_path / "capacity.json"
        result = find_capacity("--url", stub.extra["url"], "--slo-ms", str(20000 / capacity_rps),
                               "--step-seconds", "1.5", "--json", str(out), "--quiet")
    finally:
        stub.stop()
    assert result.returncode == 0, result.stderr
    last = SUMMARY.match(result.stdout.strip().splitlines()[-1])
    assert last, result.stdout
    assert float(last["sat"]) == pytest.approx(capacity_rps, rel=0.10)
    # An M/D/1 queue at 20 service times of SLO: sustainable well past half its capacity, never beyond it.
    assert 0.5 * capacity_rps <= float(last["slo"]) <= MAX_SUSTAINED_FRACTION * float(last["sat"]) + 0.01
    data = json.loads(out.read_text())
    assert data["saturation_rps"] == pytest.approx(float(last["sat"]), abs=0.05)
    assert data["recommendations"]["capacity_rps_per_replica"] == pytest.approx(float(last["slo"]), abs=0.06)
    assert len(data["steps"]) == 6 and data["model_ms_at_saturation"] == pytest.approx(1000 / capacity_rps)
    assert "CAPACITY_RPS_PER_REPLICA=" in result.stdout and "TARGET_INFLIGHT_PER_REPLICA=" in result.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--slo-ms", "0"], 2, "--slo-ms=0: expected a number in >0..3600000"),
    (["--replicas", "1.5"], 2, "--replicas=1.5: expected an integer in 1..100000 replicas"),
    (["--step-seconds", "-1"], 2, "--step-seconds=-1: expected a number in >0..600 s"),
    (["--url", "ftp://x"], 2, "--url='ftp://x': expected an http:// or https:// URL"),
    (["--json", "/nonexistent/dir/x.json"], 2, "--json='/nonexistent/dir/x.json': expected a file in an existing"),
    (["--images", "/nonexistent"], 2, "--images: '/nonexistent' is not a directory"),
], ids=["zero-slo", "fractional-replicas", "negative-step", "not-http", "json-in-missing-dir", "no-images"])
def test_bad_options_exit_2_naming_the_option(args, code, message):
    result = find_capacity(*args, timeout_s=60)
    assert result.returncode == code and message in result.stderr, result.stderr


def test_an_unreachable_url_exits_1_through_the_script_too():
    result = find_capacity("--url", f"http://127.0.0.1:{free_port()}", script=True, timeout_s=60)
    assert result.returncode == 1 and "cannot reach" in result.stderr, result.stderr


@pytest.mark.slow
def test_a_service_that_answers_no_request_well_exits_1_saying_what_it_answered(tmp_path):
    stub = start_stub_server(tmp_path, status=404)
    try:
        result = find_capacity("--url", stub.extra["url"], "--step-seconds", "1", timeout_s=60)
    finally:
        stub.stop()
    assert result.returncode == 1
    assert "succeeded" in result.stderr and "HTTP 404" in result.stderr, result.stderr
