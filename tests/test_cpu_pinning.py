"""WORKER_CPUS: which CPUs a new worker takes (a pure choice), and real gunicorn workers pinned by it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from inference.cpu_pinning import pick_cpus
from tests.support import child_pids, ready_workers, start_gunicorn, wait_until


@pytest.mark.parametrize("allowed, held, count, expected", [
    ({0, 1}, [], 1, (0,)),
    ({0, 1}, [(0,)], 1, (1,)),
    ({0, 1}, [(0,), (1,)], 1, (0,)),
    ({0, 1}, [(1,), (1,)], 1, (0,)),
    ({0, 1, 2, 3}, [(0, 1)], 2, (2, 3)),
    ({0, 1, 2, 3}, [(0, 1), (2, 3), (0, 1)], 2, (2, 3)),
    ({2, 5}, [(2,)], 1, (5,)),
    ({3}, [(3,), (3,)], 1, (3,)),
    ({0, 1}, [], 4, (0, 1)),
    ({0, 1}, [(7,)], 1, (0,)),
], ids=["first-worker-lowest-cpu", "second-worker-the-free-cpu", "third-worker-back-to-the-lowest",
        "a-freed-cpu-is-taken-first", "two-cpus-each", "two-cpus-each-the-least-held-pair",
        "only-the-allowed-cpus", "one-cpu-shared-by-all", "more-asked-than-allowed-takes-all",
        "cpus-outside-the-allowed-ignored"])
def test_pick_cpus(allowed, held, count, expected):
    assert pick_cpus(allowed, held, count) == expected


@pytest.mark.parametrize("allowed, count", [(set(), 1), ({0}, 0)], ids=["no-cpu-allowed", "count-zero"])
def test_pick_cpus_refuses_what_it_cannot_do(allowed, count):
    with pytest.raises(ValueError, match="at least one CPU"):
        pick_cpus(allowed, [], count)


def cpus_of_every_thread(pid: int) -> set[frozenset[int]]:
    """The affinity of each thread of `pid` (the model thread, the request threads, the backend's pool)."""
    return {frozenset(os.sched_getaffinity(int(tid))) for tid in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.parametrize("worker_cpus", [0, 1], ids=["unpinned-by-default", "one-cpu-each"])
def test_gunicorn_workers_take_their_own_cpus_and_a_new_worker_the_freed_one(tmp_path, worker_cpus):
    allowed = os.sched_getaffinity(0)
    server = start_gunicorn(tmp_path, workers=2, env={"WORKER_CPUS": worker_cpus})
    pidfile: Path = server.extra["pidfile"]
    try:
        first = ready_workers(pidfile)
        assert len(first) == 2
        held = {pid: cpus_of_every_thread(pid) for pid in first}
        if worker_cpus == 0:
            assert all(cpus == {frozenset(allowed)} for cpus in held.values()), held
            return
        # Every thread of a worker on the worker's one CPU; the two workers on different CPUs where there are two.
        assert all(len(cpus) == 1 and len(next(iter(cpus))) == 1 for cpus in held.values()), held
        taken = [next(iter(cpus)) for cpus in held.values()]
        assert len(set(taken)) == min(2, len(allowed)) and set().union(*taken) <= allowed, taken

        # TTOU stops the oldest worker; the one TTIN adds takes the CPU it left.
        server.signal(signal.SIGTTOU)
        wait_until(lambda: len(child_pids(server.pid)) == 1, timeout_s=90, what="one worker left after TTOU")
        survivor = child_pids(server.pid)[0]
        server.signal(signal.SIGTTIN)
        wait_until(lambda: len(ready_workers(pidfile)) == 2, timeout_s=120, what="the worker TTIN added")
        added = next(pid for pid in ready_workers(pidfile) if pid != survivor)
        freed = next(cpus for pid, cpus in held.items() if pid != survivor)
        assert cpus_of_every_thread(added) == freed
    finally:
        server.stop()
