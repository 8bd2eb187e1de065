"""Ctrl-C in the middle of a replay: `python -m local` stops every part it started, by PID, frees every
port and exits 130; with -v each part's log reaches the console with the part's name in front."""

from __future__ import annotations

import json
import signal

import pytest

from processes.children import group_members, pid_alive
from processes.net import listening
from tests.support import PYTHON, free_port, start_child, wait_until, child_pids

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_the_replay_stops_every_part_and_frees_every_port(tmp_path, sig):
    ports = [free_port(), free_port(), free_port()]
    while len(set(ports)) < 3:
        ports[2] = free_port()
    out = tmp_path / "run"
    # A given worker capacity skips the calibration: what is tested is the stop, not the sizing.
    argv = [PYTHON, "-m", "local", "demo", "--quick", "-v", "--out", str(out), "--service-port", str(ports[0]),
            "--prometheus-port", str(ports[1]), "--autoscaler-port", str(ports[2]), "--worker-capacity-rps", "30"]
    child = start_child("local-demo", argv, tmp_path / "logs")
    pids_file = out / "state" / "pids.json"
    try:
        pids = wait_until(lambda: "loadtester" in (p := json.loads(pids_file.read_text())) and p, timeout_s=240,
                          interval_s=0.5, what="the load tester to start")
        master = int((out / "state" / "gunicorn.pid").read_text())
        workers = child_pids(master)
        assert workers and all(listening(p) for p in ports)
        child.signal(sig)
        wait_until(lambda: not child.alive(), timeout_s=120, what="the orchestrator to stop")
    finally:
        child.stop()
    assert child.proc.returncode == 130, child.log()[-3000:]
    started = list(pids.values()) + workers
    assert [pid for pid in started if pid_alive(pid)] == []
    assert [pid for pid in pids.values() if group_members(pid)] == []
    assert [p for p in ports if listening(p)] == []
    console = child.log()
    assert "interrupted; every process of the run was stopped" in console
    # -v: the parts' own lines, prefixed with their names.
    assert "[gunicorn] " in console and "[autoscaler] " in console
