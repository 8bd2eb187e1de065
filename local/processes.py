"""Child processes of the local stack: each in its own process group, its output in log files, stopped by PID.

Nothing here looks processes up by name: a child is known by the PID `Popen` returned, and its process
group (its PID, since it leads a new session) holds whatever it forked, such as gunicorn's workers.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence, TextIO

HOST = "127.0.0.1"


class StartError(RuntimeError):
    """A part of the stack could not start; the message says which and why (with the end of its log)."""


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something listens on host:port (binding fails), like the servers we start would find."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # The servers set SO_REUSEADDR too, so connections in TIME_WAIT do not count as "taken".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def listening(port: int, host: str = HOST) -> bool:
    """True when a TCP connection to host:port is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def group_members(pgid: int) -> list[int]:
    """PIDs of live processes in process group `pgid` (read from /proc; zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
            continue
        # After the command: state, ppid, pgrp, ...
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return sorted(members)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(condition: Callable[[], object], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll until `condition()` is truthy (exceptions count as "not yet"); False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return True
        except Exception:  # noqa: BLE001 - a server that is still starting refuses connections
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def _renice(pid: int, nice: int) -> None:
    # Set from here rather than in a preexec_fn, which is unsafe while the log threads run.
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:  # raising priority needs CAP_SYS_NICE; without it the child runs at the usual priority
        pass


class _Pump(threading.Thread):
    """Copies one output stream of a child to a file and, when verbose, to the console with a prefix."""

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
    """One running part of the stack."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str],
                 cwd: Path, console: TextIO | None = None, stdout_path: Path | None = None, nice: int = 0):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.stdout_path = stdout_path or self.log_path
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
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

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout_s: float = 40.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask the leader to stop (it stops what it forked), then kill its group if anything is left.

        Returns the exit status. Safe to call twice.
        """
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"local: {self.name} (pid {self.pid}) did not stop within {timeout_s:g} s; killing it",
                      file=sys.stderr)
        # Workers of a leader that died or hung: nothing of this group may outlive the run.
        if group_members(self.proc.pid):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
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


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
