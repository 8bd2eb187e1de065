"""Child processes: each in its own process group, its output in a log file, stopped by its PID.

Nothing here looks processes up by name: a child is known by the PID `Popen` returned, and its process
group (its PID, since it leads a new session) holds whatever it forked, such as gunicorn's workers. So a
run leaves nothing behind and never touches processes it did not start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from signal import SIGKILL, SIGTERM
from typing import Callable, Mapping, Sequence, TextIO

import psutil

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


class StartError(RuntimeError):
    """A process could not start; the message says which and why (with the end of its log)."""


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has exited; its parent just has not reaped it yet)."""
    try:
        return psutil.Process(pid).status() not in _GONE
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[int]:
    """PIDs of live processes in process group `pgid`."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() not in _GONE:
                members.append(proc.pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return sorted(members)


def child_pids(pid: int) -> list[int]:
    """Live children of `pid` (a gunicorn master's workers)."""
    try:
        return sorted(c.pid for c in psutil.Process(pid).children() if pid_alive(c.pid))
    except psutil.Error:
        return []


def wait_for(condition: Callable[[], object], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll until `condition()` is truthy (exceptions count as "not yet"); False after `timeout_s`."""
    try:
        wait_until(condition, timeout_s, interval_s)
    except TimeoutError:
        return False
    return True


def wait_until(condition: Callable[[], object], timeout_s: float = 60.0, interval_s: float = 0.1,
               what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy, and return that; TimeoutError naming `what` (and
    the last exception the condition raised: a server that is still starting refuses connections)."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval_s)


def _renice(pid: int, nice: int) -> None:
    # Set from here rather than in a preexec_fn, which is unsafe while the log threads run.
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:  # raising priority needs CAP_SYS_NICE; without it the child runs at the usual priority
        pass


class _Pump(threading.Thread):
    """Copies one output stream of a child to a file and, when given a console, to it with a prefix."""

    def __init__(self, stream, path: Path, prefix: str, console: TextIO | None, lock: threading.Lock):
        super().__init__(daemon=True, name=f"pump-{path.name}")
        self.stream, self.path, self.prefix, self.console, self.lock = stream, path, prefix, console, lock

    def run(self) -> None:
        with open(self.path, "ab") as out:
            for line in iter(self.stream.readline, b""):
                out.write(line)
                out.flush()
                if self.console is not None:
                    text = line.decode(errors="replace").rstrip("\n")
                    with self.lock:
                        print(f"{self.prefix} {text}", file=self.console, flush=True)
        self.stream.close()


_CONSOLE_LOCK = threading.Lock()


class Child:
    """A running child. `extra` holds what its starter knows about it (url, port, pidfile...)."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None,
                 cwd: Path = REPO, console: TextIO | None = None, stdout_path: Path | None = None, nice: int = 0):
        self.name = name
        self.extra: dict = {}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.stdout_path = stdout_path or self.log_path
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, cwd=cwd, env=child_env(env or {}), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        if nice:
            _renice(self.proc.pid, nice)
        prefix = f"[{name}]"
        self._pumps = [_Pump(self.proc.stdout, self.stdout_path, prefix, console, _CONSOLE_LOCK),
                       _Pump(self.proc.stderr, self.log_path, prefix, console, _CONSOLE_LOCK)]
        for pump in self._pumps:
            pump.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout_s: float = 40.0, sig: int = SIGTERM) -> int | None:
        """Ask the leader to stop (it stops what it forked), then kill its group if anything is left.
        Returns the exit status. Safe to call twice."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"{self.name} (pid {self.pid}) did not stop within {timeout_s:g} s; killing it",
                      file=sys.stderr)
        # Workers of a leader that died or hung: nothing of this group may outlive it.
        if group_members(self.proc.pid):
            try:
                os.killpg(self.proc.pid, SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            wait_for(lambda: not group_members(self.proc.pid), 10.0, 0.05)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for pump in self._pumps:
            pump.join(5)
        return self.proc.returncode


def child_env(overrides: Mapping[str, object]) -> dict[str, str]:
    """This process's environment with `overrides`, and unbuffered Python output (logs arrive as written)."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in overrides.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def wait_ready(child: Child, condition: Callable[[], object], timeout_s: float, what: str,
               interval_s: float = 0.1) -> Child:
    """Wait for `condition` while `child` lives. StartError, after stopping the child, when it exits or the
    time runs out: the message names what was awaited and ends with the child's log."""
    if wait_for(lambda: child.alive() and condition(), timeout_s, interval_s):
        return child
    why = (f"exited with status {child.proc.returncode}" if not child.alive()
           else f"was not ready within {timeout_s:g} s")
    child.stop()
    raise StartError(f"{child.name} {why} ({what}); the end of {child.log_path}:\n{child.log_tail(4000)}")
