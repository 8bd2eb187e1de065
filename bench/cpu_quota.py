"""A CPU quota for what a block starts: the benchmark's replica on half a core, as a pod's `cpu: 500m` limit.

Linux's CFS bandwidth control (the cgroup `cpu` controller: cpu.cfs_quota_us per cpu.cfs_period_us, what
Kubernetes sets from a container's CPU limit) lets a group run `fraction` of one core per period, then
throttles it until the next. `cpu_group` makes such a group for a block; `joined` moves the calling thread
into it (cgroup v1 lets one thread move: its `tasks` file), so the processes it starts inherit the quota, as
they inherit `pinned`'s affinity, and moves the whole process back where it was after. It needs a writable cgroup v1 cpu hierarchy
(root on most Linux machines with it); elsewhere `cpu_group` raises QuotaUnavailable saying why.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from local.machine import cpu_cgroup

CPU_HIERARCHY = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000   # the kernel's default period, and the one Kubernetes uses
PERIOD_RANGE_US = (1_000, 1_000_000)   # what the kernel accepts for cpu.cfs_period_us
_GROUPS = itertools.count()


class QuotaUnavailable(RuntimeError):
    """No CPU quota can be set here; the message says why."""


def check(fraction: float, period_us: int) -> None:
    """Raise ValueError, naming the value, unless the kernel takes `fraction` of a core per `period_us`."""
    if not fraction > 0:
        raise ValueError(f"fraction={fraction}: expected a share of one core above 0")
    lo, hi = PERIOD_RANGE_US
    if not lo <= period_us <= hi or round(fraction * period_us) < lo:
        raise ValueError(f"a period of {period_us / 1000:g} ms: expected {lo / 1000:g}..{hi / 1000:g} ms, with "
                         f"{fraction:g} of it >= {lo / 1000:g} ms (the kernel's bounds)")


@contextmanager
def cpu_group(fraction: float, hierarchy: Path = CPU_HIERARCHY, period_us: int = PERIOD_US):
    """A new group allowed `fraction` of one core (0 < fraction) in every `period_us`; removed at the end of
    the block, once the processes started in it have ended (stop them inside the block). Join it with `joined`.

    The period bounds how long a group that used its quota waits: up to (1 - fraction) x period_us. Kubernetes
    uses the kernel's 100 ms unless the kubelet's --cpu-cfs-quota-period says otherwise."""
    check(fraction, period_us)
    if not (hierarchy / "tasks").is_file():
        raise QuotaUnavailable(f"no cgroup v1 cpu hierarchy at {hierarchy} (cgroup v2 moves whole processes only)")
    # A new name each time: a group left behind (a helper process the block started, such as
    # multiprocessing's resource tracker, lives on in it) must not stop the next one.
    group = hierarchy / f"bench-quota-{os.getpid()}-{threading.get_native_id()}-{next(_GROUPS)}"
    try:
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(period_us))
        (group / "cpu.cfs_quota_us").write_text(str(round(fraction * period_us)))
    except OSError as exc:
        _remove(group, timeout_s=0.0)
        raise QuotaUnavailable(f"cannot set a CPU quota in {hierarchy}: {exc}") from None
    try:
        yield group
    finally:
        _remove(group)


@contextmanager
def joined(group: Path):
    """Run the block's calling thread, and the processes it starts, in `group`; after it, this whole process
    (the threads the block started too) is back in the group it was in before."""
    before = own_group(group.parent)
    (group / "tasks").write_text(str(threading.get_native_id()))
    try:
        yield group
    finally:
        (before / "cgroup.procs").write_text(str(os.getpid()))


def own_group(hierarchy: Path = CPU_HIERARCHY) -> Path:
    """The cpu group the calling thread is in, as a folder of `hierarchy`."""
    path = cpu_cgroup(f"/proc/self/task/{threading.get_native_id()}/cgroup")
    if path is None:
        raise QuotaUnavailable("this thread is in no cgroup v1 cpu group")
    return hierarchy / path.lstrip("/")


def _remove(group: Path, timeout_s: float = 30.0) -> None:
    """Remove the group once it is empty (rmdir fails while it has tasks: processes still ending)."""
    deadline = time.monotonic() + timeout_s
    while group.exists():
        try:
            group.rmdir()
        except OSError:
            if time.monotonic() >= deadline:
                return   # left behind, named after this process; harmless
            time.sleep(0.2)
