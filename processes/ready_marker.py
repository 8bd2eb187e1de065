"""The readiness marker: a gunicorn worker that has loaded and warmed its model creates
`<pidfile>.<worker pid>.ready` next to the master's pidfile, and removes it when it stops.

The marker says "this worker is warm"; whether the worker still lives is the reader's to check (a worker
killed by the OOM killer leaves its marker behind).
"""

from __future__ import annotations

from pathlib import Path

SUFFIX = ".ready"


def marker_path(pidfile: str | Path, pid: int) -> Path:
    return Path(f"{pidfile}.{pid}{SUFFIX}")


def markers(pidfile: str | Path) -> dict[int, Path]:
    """Every marker next to `pidfile`, by the PID it names."""
    pidfile = Path(pidfile)
    found = {}
    for path in pidfile.parent.glob(f"{pidfile.name}.*{SUFFIX}"):
        pid = path.name[len(pidfile.name) + 1:-len(SUFFIX)]
        if pid.isdigit():
            found[int(pid)] = path
    return found


def marked_pids(pidfile: str | Path) -> list[int]:
    """PIDs that wrote a marker, alive or not."""
    return sorted(markers(pidfile))
