"""Measure one worker of this machine before a run: the capacity probe against a real gunicorn worker.

`calibrate()` starts the service with one worker (TORCH_THREADS=1: the unit of a replica) on a free port,
runs the probe (loadtester.capacity) against it, then adds a second worker with TTIN and times it from the
signal to its ready marker (fork to ready: what a scale-up waits for), and stops everything.

The result is cached per machine and code version (CPU model, CPUs this process may use, its cgroup CPU
quota, Python and torch versions, the service's and the probe's source, the model weights): a second
`make demo` starts at once. `--recalibrate` measures again (do it after the machine's load changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from loadtester.capacity import ProbeError, ProbeSettings, measure, read_info
from loadtester.capacity_report import CapacityReport
from loadtester.config import BUNDLED_IMAGES
from loadtester.http_client import UnreachableError, resolve_target
from loadtester.images import load_images

from local.config import REPO, Options
from local.machine import cpu_cgroup, describe_machine
from local.stack import service_settings
from processes.children import StartError, wait_for
from processes.net import HOST
from processes.ready_marker import marked_pids
from processes.services import start_gunicorn

PYTHON = sys.executable
# What the cache key covers besides the machine: the code whose speed is measured, and the probe itself.
CODE_FILES = ("inference/*.py", "loadtester/capacity.py", "loadtester/http_client.py", "loadtester/sender.py")
SPAWN_TIMEOUT_S = 120.0


def cache_key(options: Options) -> str:
    machine = describe_machine()
    parts = [machine["cpu_model"], str(machine["cpus_available"]), _cpu_quota(), platform.python_version(),
             machine["torch"], options.model_weights if options.model_weights in ("random", "imagenet") else "file",
             # what the calibration worker runs with (its pinning, its threads), the weights counted above
             repr(sorted((k, v) for k, v in service_settings("").items() if k != "MODEL_WEIGHTS"))]
    digest = hashlib.sha256("\n".join(parts).encode())
    for pattern in CODE_FILES:
        for path in sorted(REPO.glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _cpu_quota() -> str:
    """The cgroup's CPU limit (v2 cpu.max, v1 cfs quota/period), which slows a machine as much as its CPUs."""
    for path in ("/sys/fs/cgroup/cpu.max",):
        try:
            return Path(path).read_text().strip()
        except OSError:
            pass
    cgroup = cpu_cgroup() or ""
    for base in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"):
        try:
            quota = Path(f"{base}{cgroup}/cpu.cfs_quota_us").read_text().strip()
            period = Path(f"{base}{cgroup}/cpu.cfs_period_us").read_text().strip()
            return f"{quota}/{period}"
        except OSError:
            continue
    return "none"


def cache_dir(options: Options) -> Path:
    return Path(options.calibration_dir).resolve() if options.calibration_dir else REPO / ".cache" / "calibration"


def load_or_measure(options: Options, work_dir: Path, console: TextIO = sys.stdout) -> tuple[CapacityReport, str]:
    """(the measurement, where it came from). Measures when there is no cached one or --recalibrate."""
    path = cache_dir(options) / f"capacity-{cache_key(options)}.json"
    if path.is_file() and not options.recalibrate:
        try:
            data = json.loads(path.read_text())
            return CapacityReport.from_dict(data["report"]), f"cached measurement of {data['measured_at']} ({path})"
        except (ValueError, KeyError, TypeError) as exc:
            print(f"local: ignoring the unreadable calibration cache {path} ({exc!r})", file=console, flush=True)
    report = calibrate(options, work_dir, console)
    path.parent.mkdir(parents=True, exist_ok=True)
    measured_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    path.write_text(json.dumps({"measured_at": measured_at, "machine": describe_machine(),
                                "report": report.as_dict()}, indent=1) + "\n")
    return report, f"measured now ({measured_at}; cached in {path})"


def calibrate(options: Options, work_dir: Path, console: TextIO = sys.stdout) -> CapacityReport:
    """Start one worker, probe it, time a second worker's start, stop everything. Raises StartError."""
    state_dir = work_dir / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    print("local: measuring one worker of this machine (about 45 s; cached for the next runs)", file=console,
          flush=True)
    child = start_gunicorn(state_dir, name="calibration", settings=service_settings(options.model_weights),
                           ready_timeout_s=SPAWN_TIMEOUT_S, log_dir=work_dir / "logs")
    pidfile, port = child.extra["pidfile"], child.extra["port"]
    try:
        target = resolve_target(f"http://{HOST}:{port}", "/predict")
        try:
            report = measure(target, load_images(BUNDLED_IMAGES), ProbeSettings(), replicas=1,
                             info=read_info(target),
                             say=lambda text: print(f"local: probe: {text}", file=console, flush=True))
        except (ProbeError, UnreachableError) as exc:
            raise StartError(f"the calibration worker could not be measured: {exc}; the end of {child.log_path}:\n"
                             f"{child.log_tail()}") from None
        report.startup_s = _time_added_worker(child.pid, pidfile)
        return report
    finally:
        child.stop(timeout_s=45.0)


def _time_added_worker(master_pid: int, pidfile: Path) -> float | None:
    """Seconds from TTIN to the new worker's ready marker (None if it never came)."""
    before = set(marked_pids(pidfile))
    started = time.monotonic()
    os.kill(master_pid, signal.SIGTTIN)
    if not wait_for(lambda: set(marked_pids(pidfile)) - before, SPAWN_TIMEOUT_S, 0.02):
        return None
    return round(time.monotonic() - started, 2)
