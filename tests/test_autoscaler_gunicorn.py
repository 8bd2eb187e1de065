"""The gunicorn scaler's failure cases, which need no gunicorn: a missing, garbled or stale pid file is
an error the loop retries (the master may still be starting), never a crash. Scaling a real master is
tested in test_autoscaler_stack.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autoscaler.gunicorn_scaler import GunicornScaler, alive, children
from autoscaler.scalers import FatalScalerError, ScalerError


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


@pytest.mark.parametrize("content,message", [
    (None, "does not exist (master not started yet?)"),
    ("not-a-pid\n", "does not hold a pid"),
    ("DEAD", "is not running"),
], ids=["missing", "garbled", "stale"])
def test_pidfile_problems_are_retryable_errors(tmp_path, content, message):
    pidfile = tmp_path / "gunicorn.pid"
    if content is not None:
        pidfile.write_text(str(dead_pid()) if content == "DEAD" else content)
    with pytest.raises(ScalerError) as err:
        GunicornScaler(pidfile).status()
    assert message in str(err.value) and not isinstance(err.value, FatalScalerError)


def test_children_and_liveness_come_from_proc(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in children(os.getpid())
        assert alive(child.pid)
    finally:
        child.kill()
        child.wait(30)
    assert not alive(child.pid)


def test_counts_a_masters_children_and_their_ready_markers(tmp_path):
    # This test process plays the master: two children, one of which announced readiness.
    pidfile = tmp_path / "gunicorn.pid"
    pidfile.write_text(str(os.getpid()))
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        (tmp_path / f"gunicorn.pid.{kids[0].pid}.ready").touch()
        (tmp_path / f"gunicorn.pid.{dead_pid()}.ready").touch()  # a leftover of a dead worker
        status = GunicornScaler(pidfile).status()
        assert status.ready == 1
        assert status.live >= 2 and status.current == status.live
    finally:
        for k in kids:
            k.kill()
            k.wait(30)
