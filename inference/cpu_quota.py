"""The CPU quota this process runs under (a container's CPU limit), and a pacer that keeps a worker inside it.

Under CFS bandwidth control (cgroup v1 `cpu.cfs_quota_us` per `cpu.cfs_period_us`, cgroup v2 `cpu.max`: what
Kubernetes sets from a container's CPU limit) a group that has used its quota for the period is stopped until
the next one. With the kernel's 100 ms period and a `500m` limit that is up to 50 ms in which no thread of the
worker runs: a request that should be refused at once waits for the quota too. The pacer holds the worker's
CPU use, over every window of one period, under its share of the quota: the model thread waits before a
forward that would overrun it, so the group is never stopped and the request threads always have CPU left to
answer. Under overload the queue then drains at the paced rate, which admission learns like any other
(inference/drain.py).

`Pacer.delay_s` is the decision, a pure function of the CPU clock's samples and of the request threads' CPU
rate learned between forwards; `Pacer.wait` is its loop, with the clocks and the sleep injected.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from inference.drain import PerImageEstimate

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The most of the budget one forward may take. Small forwards fill a window's budget closely; large ones leave
# room in every window that the next cannot use (simulated, tests/test_service_pacer.py: forwards of half
# the budget used 68% of it where the request threads used 4% of a CPU beside them, of a quarter 93%).
PIECE_SHARE = 0.25


@dataclass(frozen=True)
class Quota:
    cpus: float       # quota / period: a limit of `500m` is 0.5
    period_s: float   # CFS's period: the kernel's and Kubernetes' 0.1 unless the kubelet sets another


def read_quota(cgroup_file: Path | str = "/proc/self/cgroup", root: Path = CGROUP_ROOT) -> Quota | None:
    """The tightest CPU quota on this process's cgroup and its ancestors (cgroup v1 or v2); None without one."""
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        return None
    found: list[Quota] = []
    for line in lines:
        hierarchy, _, path = line.partition(":")[2].partition(":")
        if hierarchy == "":   # cgroup v2: "0::/path"
            mounts = [root] if (root / "cgroup.controllers").exists() else [root / "unified"]
            reader = _v2_quota
        elif "cpu" in hierarchy.split(","):
            mounts = [root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"]
            reader = _v1_quota
        else:
            continue
        for mount in (m for m in mounts if m.is_dir()):
            group = mount / path.lstrip("/")
            # Without a cgroup namespace a container sees the host's path; its own group is the mount's root.
            for folder in _ancestors(group if group.is_dir() else mount, mount):
                quota = reader(folder)
                if quota is not None:
                    found.append(quota)
    return min(found, key=lambda q: q.cpus, default=None)


def _ancestors(folder: Path, mount: Path):
    while True:
        yield folder
        if folder == mount or folder.parent == folder:
            return
        folder = folder.parent


def _v1_quota(folder: Path) -> Quota | None:
    try:
        quota_us = int((folder / "cpu.cfs_quota_us").read_text())
        period_us = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return Quota(quota_us / period_us, period_us / 1e6) if quota_us > 0 and period_us > 0 else None


def _v2_quota(folder: Path) -> Quota | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        quota_us, period_us = (None if quota == "max" else int(quota)), int(period)
    except (OSError, ValueError):
        return None
    return Quota(quota_us / period_us, period_us / 1e6) if quota_us and period_us > 0 else None


def quota_cpus(quota: Quota | None) -> int | None:
    """Whole CPUs a quota is worth to a thread pool: more threads than that only run in turn."""
    return None if quota is None else max(1, math.ceil(quota.cpus - 1e-9))


class Pacer:
    """Keeps a process's CPU time within `budget_s` over every `window_s`, waiting before each piece of work.

    What a piece costs is learned from the process's CPU time across it (the forward and whatever the request
    threads did meanwhile), as the mean plus a margin for its spread (drain.PerImageEstimate). What the request
    threads use is learned between forwards, from the process's CPU clock less the model thread's own."""

    def __init__(self, budget_s: float, window_s: float, cpu_clock: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 thread_clock: Callable[[], float] = time.thread_time):
        if budget_s <= 0 or window_s <= 0:
            raise ValueError(f"a budget of {budget_s} s per {window_s} s window: expected a budget and a window "
                             "above 0 s")
        self.budget_s, self.window_s = budget_s, window_s
        self._cpu_clock, self._clock, self._sleep, self._thread_clock = cpu_clock, clock, sleep, thread_clock
        self._samples: collections.deque[tuple[float, float]] = collections.deque()   # (now, CPU seconds)
        self._per_image = PerImageEstimate()   # CPU seconds
        self._wall_per_image = PerImageEstimate()
        # Between forwards, what the process's CPU clock gains beyond the model thread's own is the rest of the
        # process (request threads: decoding, answers, refusals): its rate in CPUs, averaged over about a window
        # of such stretches.
        self.others_cpus = 0.0
        self._idle_since: tuple[float, float, float] | None = None   # (moment, CPU clock, the thread's) after a forward
        self.waited_s = 0.0   # in all, for the metrics

    def images_per_piece(self, most: int) -> int:
        """How many images one forward may take: what fits PIECE_SHARE of the budget (at least 1, at most
        `most`)."""
        per_image_s = self._per_image.seconds
        if per_image_s is None or per_image_s <= 0:
            return 1   # the first forward measures what an image costs
        return max(1, min(most, int(PIECE_SHARE * self.budget_s / per_image_s)))

    def observe(self, now: float, cpu_s: float) -> None:
        self._samples.append((now, cpu_s))
        # Keep one sample at or before the window's start, to interpolate from.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def observe_others(self, now: float, cpu_s: float, own_s: float) -> None:
        """Note the clocks (the moment, the process's and the model thread's CPU) while no forward runs."""
        if self._idle_since is not None and now > self._idle_since[0]:
            seconds = now - self._idle_since[0]
            rate = max(0.0, (cpu_s - self._idle_since[1]) - (own_s - self._idle_since[2])) / seconds
            # A stretch of one window weighs 63%, a short one little: forwards back to back keep the rate.
            self.others_cpus += (1 - math.exp(-seconds / self.window_s)) * (rate - self.others_cpus)
        self._idle_since = (now, cpu_s, own_s)

    def delay_s(self, now: float, cpu_s: float, images: int) -> float:
        """How long to wait before a forward of `images`, so that every window its CPU time falls in stays
        within the budget; 0 to start now. A forward that alone costs more than the budget waits for an empty
        window. Where the rest of the process would fill the budget with a smaller forward (a storm of
        refusals from clients that retry at once), no wait makes room: holding the forward back would only
        slow the queue, lengthen its predicted wait and refuse more, so it runs now and the kernel's quota
        does the rest."""
        self.observe(now, cpu_s)
        cost_s = min(self.budget_s, images * (self._per_image.seconds or 0.0))
        if cost_s < self.budget_s and self.others_cpus * self.window_s + cost_s > self.budget_s:
            return 0.0
        # The window that ends with the forward is the fullest: it holds the forward and what was spent since a
        # moment x one window before that end. The forward may start once x is late enough for the two to fit:
        # cpu(x) >= cpu_s + cost_s - budget_s. The forward's length is the shorter of its CPU time (one thread)
        # and what forwards took: a longer guess would count too little of the past.
        lasts_s = min(cost_s, images * (self._wall_per_image.mean_s or 0.0))
        x = self._time_at(cpu_s + cost_s - self.budget_s)
        return max(0.0, x + self.window_s - lasts_s - now)

    def _time_at(self, cpu_s: float) -> float:
        """The moment the CPU clock reached `cpu_s`, interpolated between samples; -inf if it had by the first."""
        earlier = None
        for when, used in self._samples:
            if used >= cpu_s:
                if earlier is None:
                    return -math.inf
                if used == earlier[1]:
                    return when
                return earlier[0] + (when - earlier[0]) * (cpu_s - earlier[1]) / (used - earlier[1])
            earlier = (when, used)
        return self._samples[-1][0]   # never asked for more than the clock shows; the latest moment, to be safe

    def wait(self, images: int) -> tuple[float, float]:
        """Sleep until a forward of `images` fits the budget (re-checked: request threads use CPU meanwhile);
        return the moment and the CPU clock it starts at, for `spent`. It waits one window at most: by then
        the window holds only what the request threads spent, which no wait makes room for."""
        waited_s = 0.0
        while True:
            now, cpu_s = self._clock(), self._cpu_clock()
            self.observe_others(now, cpu_s, self._thread_clock())
            delay = min(self.delay_s(now, cpu_s, images), self.window_s - waited_s)
            if delay <= 0:
                self._idle_since = None   # the forward runs: its CPU is not the others'
                return now, cpu_s
            self._sleep(delay)
            waited_s += delay
            self.waited_s += delay

    def spent(self, images: int, started: tuple[float, float]) -> None:
        """Learn from a forward of `images` that started at `started` (the moment and the CPU clock)."""
        now, cpu_s = self._clock(), self._cpu_clock()
        self.observe(now, cpu_s)
        self._idle_since = (now, cpu_s, self._thread_clock())
        self._per_image.add((cpu_s - started[1]) / max(1, images))
        self._wall_per_image.add((now - started[0]) / max(1, images))
