"""The benchmark's 503 probe (bench/probe.py): it reads the status of what it is answered and times each
request from connect() to the answer's first byte, in a process of its own.

Runs against the load tester's stub server (loadtester/stub_server.py) on 127.0.0.1, which holds each answer
for a set delay; the stub stands in for the service, whose speed does not matter here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import probe
from bench.service_parts import bench_image_paths
from processes.children import REPO
from processes.net import free_port
from support import start_stub_server


@pytest.mark.parametrize("first, expected", [
    (b"HTTP/1.1 503 Service Unavailable\r\n", 503),
    (b"HTTP/1.0 200 OK\r\n", 200),
    (b"HTTP/1.1 200", 200),
    (b"", 0),
    (b"garbage here", 0),
    (b"HTTP/1.1 OK\r\n", 0),
], ids=["503", "http-1.0", "no-reason-yet", "closed-early", "not-http", "no-status-code"])
def test_status_of_the_first_bytes(first, expected):
    assert probe.status_of(first) == expected


@pytest.mark.parametrize("status, delay_ms", [(503, 0.0), (200, 60.0)], ids=["refusals", "held-answers"])
def test_the_probe_in_its_own_process_times_what_the_server_answers(tmp_path, status, delay_ms):
    stub = start_stub_server(tmp_path, delay_ms=delay_ms, status=status)
    try:
        proc = probe.start(stub.extra["port"], rate_rps=40.0, seconds=1.0, seed=1, images=bench_image_paths()[:2])
        answers = probe.collect(proc, timeout_s=120)
    finally:
        stub.stop()
    assert len(answers) >= 10   # a Poisson second at 40/s, less what the held answers delay
    assert {s for s, _ in answers} == {status}
    assert all(ms >= delay_ms for _, ms in answers)
    sample = probe.as_sample(answers, elapsed_s=1.0)
    assert sample.pct(100, status) == pytest.approx(max(ms for _, ms in answers))
    assert sample.pct(0, status, "from_send_s") == pytest.approx(min(ms for _, ms in answers))
    assert sample.pct(99, status, "send_lag_s") == 0.0


def test_a_refused_connection_is_an_answer_of_status_0_not_a_lost_run():
    proc = probe.start(free_port(), rate_rps=20.0, seconds=0.5, seed=1, images=bench_image_paths()[:1])
    answers = probe.collect(proc, timeout_s=120)
    assert answers and {s for s, _ in answers} == {0}


@pytest.mark.parametrize("args, message", [
    (["1", "0", "1", "1", "x.jpg"], "RATE_RPS and SECONDS must be > 0"),
    (["1", "5", "-1", "1", "x.jpg"], "RATE_RPS and SECONDS must be > 0"),
    (["1", "5", "1"], "python -m bench.probe PORT"),
    (["http", "5", "1", "1", "x.jpg"], "PORT and SEED must be integers"),
], ids=["zero-rate", "negative-seconds", "missing-arguments", "port-not-a-number"])
def test_bad_arguments_are_named(args, message):
    result = subprocess.run([sys.executable, "-m", "bench.probe", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and message in result.stderr
