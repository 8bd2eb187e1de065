"""Which CPUs a new gunicorn worker is pinned to (WORKER_CPUS), so that a worker is worth a fixed number of
cores, as a pod with a CPU limit is.

Unpinned, a worker's request threads (decoding, HTTP) run on whichever core is free while its model thread
runs the forward: measured alone, one worker then serves what more than one core can, and on a machine with
few cores a second worker adds far less than a worker's worth (with a fast forward, such as bf16 on AMX, a
worker's decoding and HTTP are 40% of its CPU). Pinned, each worker's threads share its own cores, and N
workers serve about N times one worker.

The model thread's lower CPU priority (MODEL_THREAD_NICE, `lower_priority`) lives here too: where and how
urgently a worker's threads run.

The choice is a pure function of the CPUs the master may use and the CPUs its live workers hold; the gunicorn
hooks (inference/gunicorn.conf.py) record a worker's CPUs in the master before the fork and apply them in the
child after it.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Iterable, Sequence

log = logging.getLogger(__name__)


def pick_cpus(allowed: Iterable[int], held: Iterable[Sequence[int]], count: int) -> tuple[int, ...]:
    """The `count` CPUs of `allowed` that the fewest live workers hold (`held`: each worker's CPUs), the
    lowest-numbered first among equals; all of `allowed` when it has no more than `count`."""
    cpus = sorted(set(allowed))
    if count <= 0 or not cpus:
        raise ValueError(f"need at least one CPU to pick from and a count >= 1, got {cpus} and {count}")
    if count >= len(cpus):
        return tuple(cpus)
    load = collections.Counter(cpu for worker in held for cpu in worker)
    return tuple(sorted(sorted(cpus, key=lambda cpu: (load[cpu], cpu))[:count]))


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity: what taskset or a container's cpuset allows)."""
    return set(os.sched_getaffinity(0))


def pin(cpus: Sequence[int]) -> None:
    """Pin the calling process (a freshly forked worker: every thread it starts inherits this)."""
    os.sched_setaffinity(0, cpus)


def lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (Linux treats a thread id as a process here)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # a sandbox may forbid it; serving matters more than priorities
        log.warning("could not lower the model thread's priority: %s", exc)
