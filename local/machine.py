"""What a run ran on: CPU model, cores, memory, load, Python and library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import psutil

from local.config import available_cpus


def cpu_cgroup(cgroup_file: Path | str = "/proc/self/cgroup") -> str | None:
    """The cgroup v1 `cpu` controller's group in a /proc/<pid>[/task/<tid>]/cgroup file (e.g. "/" or
    "/kubepods/pod1"); None where the file has no such line (cgroup v2, or not Linux)."""
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "cpu" in parts[1].split(","):
            return parts[2]
    return None


def cpu_model() -> str:
    """The CPU's model name (psutil does not report it: /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    return round(psutil.virtual_memory().total / 1024 ** 3, 1)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpus_available": available_cpus(),
        "cpus_total": os.cpu_count(),
        "memory_gib": _memory_gib(),
        # Other work on the machine slows every run: the load average at the start says how much there was.
        "load_average_1_5_15": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "gunicorn": _version("gunicorn"),
    }


def machine_line(m: dict) -> str:
    return (f"{m['cpu_model']}, {m['cpus_available']} CPUs, {m['memory_gib']} GiB, Python {m['python']}, "
            f"torch {m['torch']}")
