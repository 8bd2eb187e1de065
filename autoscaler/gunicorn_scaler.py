"""Scale the workers of a local gunicorn master: the replicas of the local stack.

gunicorn adds a worker on SIGTTIN and, on SIGTTOU, stops its OLDEST worker gracefully (the worker
finishes its in-flight requests, then exits). Its master keeps at most 5 pending signals, so signals
are sent one at a time, each waited for: a burst of TTINs would otherwise be dropped silently.

- current: the worker count the master was told to keep (what the policy decides from). It starts as
  the number of live workers and is re-read from them when they disagree for longer than
  `resync_after_s` with no signal sent (someone else signalled the master, or a worker failed to boot);
- live: the master's children;
- ready: live workers that wrote their readiness marker (processes/ready_marker.py) after warming up and are not
  being removed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

import psutil

from processes.ready_marker import marker_path

from .scaling import ScalerError, ScalerStatus


_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)  # a zombie has exited; its parent just has not reaped it


def children(pid: int) -> list[int]:
    try:
        return sorted(c.pid for c in psutil.Process(pid).children())
    except psutil.Error:
        return []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in _GONE
    except psutil.Error:
        return False


def start_time(pid: int) -> float:
    """When the process started: orders workers by age like gunicorn does."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


class GunicornScaler:
    def __init__(self, pidfile: str | os.PathLike, drain_timeout_s: float = 35.0, spawn_timeout_s: float = 10.0,
                 resync_after_s: float = 60.0, poll_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 should_stop: Callable[[], bool] = lambda: False):
        self.pidfile = Path(pidfile)
        self.drain_timeout_s = drain_timeout_s
        self.spawn_timeout_s = spawn_timeout_s
        self.resync_after_s = resync_after_s
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep
        self.should_stop = should_stop
        self._master: int | None = None
        self._target: int | None = None
        self._draining: set[int] = set()
        self._last_signal_s = float("-inf")
        self._mismatch_since_s: float | None = None

    def master_pid(self) -> int:
        try:
            pid = int(self.pidfile.read_text().strip())
        except FileNotFoundError:
            raise ScalerError(f"gunicorn pid file {self.pidfile} does not exist (master not started yet?)") from None
        except ValueError:
            raise ScalerError(f"gunicorn pid file {self.pidfile} does not hold a pid") from None
        if not alive(pid):
            raise ScalerError(f"gunicorn master {pid} (from {self.pidfile}) is not running")
        return pid

    def _workers(self, master: int) -> list[int]:
        self._draining = {p for p in self._draining if alive(p)}
        return [p for p in children(master) if alive(p)]

    def status(self) -> ScalerStatus:
        master = self.master_pid()
        live = self._workers(master)
        serving = [p for p in live if p not in self._draining]
        now = self.clock()
        if master != self._master or self._target is None:
            self._master, self._target, self._mismatch_since_s = master, len(serving), None
        elif len(serving) != self._target and now - self._last_signal_s > self.resync_after_s:
            if self._mismatch_since_s is None:
                self._mismatch_since_s = now
            elif now - self._mismatch_since_s > self.resync_after_s:
                self._target, self._mismatch_since_s = len(serving), None
        else:
            self._mismatch_since_s = None
        ready = [p for p in serving if marker_path(self.pidfile, p).exists()]
        return ScalerStatus(current=self._target, ready=len(ready), live=len(live))

    def set_replicas(self, replicas: int) -> None:
        replicas = max(replicas, 1)  # gunicorn ignores TTOU at one worker
        self.status()
        master = self._master
        while self._target < replicas:
            before = set(self._workers(master))
            self._signal(master, signal.SIGTTIN)
            self._target += 1
            self._wait(lambda: set(self._workers(master)) - before, self.spawn_timeout_s)
        while self._target > replicas:
            serving = [p for p in self._workers(master) if p not in self._draining]
            victim = min(serving, key=lambda p: (start_time(p), p)) if serving else None
            self._signal(master, signal.SIGTTOU)
            self._target -= 1
            if victim is not None:
                self._draining.add(victim)
                # Bounded: a worker stuck past the drain timeout stays counted as draining, not ready.
                self._wait(lambda: not alive(victim), self.drain_timeout_s)

    def _signal(self, master: int, sig: int) -> None:
        try:
            os.kill(master, sig)
        except ProcessLookupError:
            raise ScalerError(f"gunicorn master {master} exited") from None
        self._last_signal_s = self.clock()

    def _wait(self, condition: Callable[[], object], timeout_s: float) -> bool:
        deadline = self.clock() + timeout_s
        while not condition():
            if self.clock() > deadline or self.should_stop():
                return False
            self.sleep(self.poll_s)
        return True
