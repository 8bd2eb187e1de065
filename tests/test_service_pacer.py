"""inference/cpu_quota.py's pacer, which keeps a worker's CPU time inside its quota: on simulated time (the
budget held and most of it used), with the Batcher, and in a real CFS quota group (as root, where cgroup v1's
cpu hierarchy is writable), where the kernel's own count of throttled periods is read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from bench.cpu_quota import CPU_HIERARCHY, cpu_group, joined
from inference.batcher import Batcher
from inference.cpu_quota import Pacer
from tests import images
from tests.support import start_gunicorn

JPEG = images.jpeg((320, 240))


class FakeProcess:
    """A process on simulated time: forwards use `threads` CPUs while they run, and the request threads use
    `other_cpus` all along; (time, CPU time) is recorded at every change."""

    def __init__(self, other_cpus: float, threads: int = 1):
        self.now = self.cpu = self.forward_cpu = 0.0
        self.other_cpus, self.threads = other_cpus, threads
        self.trace = [(0.0, 0.0)]

    def advance(self, seconds: float, busy_cpus: float) -> None:
        self.now += seconds
        self.cpu += seconds * (busy_cpus + self.other_cpus)
        self.forward_cpu += seconds * busy_cpus
        self.trace.append((self.now, self.cpu))

    def worst_window_cpu_s(self, window_s: float) -> float:
        """The most CPU time in any window (its worst start is at a recorded point or a window before one)."""
        def cpu_at(t):
            for (t0, c0), (t1, c1) in zip(self.trace, self.trace[1:]):
                if t0 <= t <= t1:
                    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1
            return 0.0 if t < 0 else self.cpu
        starts = {t for t, _ in self.trace} | {t - window_s for t, _ in self.trace}
        return max(cpu_at(s + window_s) - cpu_at(s) for s in starts if s >= 0 and s + window_s <= self.now)


def paced_run(per_image_s, budget_s, window_s, other_cpus=0.0, threads=1, images=400):
    """Forwards of what the pacer allows until `images` are done; (process, pacer, seconds taken)."""
    process = FakeProcess(other_cpus, threads)
    pacer = Pacer(budget_s, window_s, cpu_clock=lambda: process.cpu, clock=lambda: process.now,
                  sleep=lambda s: process.advance(s, 0.0), thread_clock=lambda: process.forward_cpu)
    done = 0
    while done < images:
        piece = min(pacer.images_per_piece(8), images - done)
        started = pacer.wait(piece)
        process.advance(piece * per_image_s / threads, threads)
        pacer.spent(piece, started)
        done += piece
    return process, pacer, process.now


@pytest.mark.parametrize("per_image_s, budget_s, window_s, other_cpus, threads", [
    (0.007, 0.045, 0.1, 0.0, 1),
    (0.007, 0.045, 0.1, 0.04, 1),
    (0.018, 0.045, 0.1, 0.02, 1),
    (0.002, 0.0045, 0.01, 0.0, 1),
    (0.007, 0.18, 0.1, 0.05, 2),
], ids=["zen5-half-core", "zen5-half-core-with-requests", "slow-cpu-two-images-a-piece", "10-ms-period",
        "two-cpus-two-threads"])
def test_paced_forwards_stay_within_the_budget_and_use_most_of_it(per_image_s, budget_s, window_s, other_cpus,
                                                                  threads):
    process, pacer, took_s = paced_run(per_image_s, budget_s, window_s, other_cpus, threads)
    # Within the budget, give or take the margin of a cost learnt while the request threads vary (CPU_QUOTA_TARGET
    # leaves the quota a tenth more than the budget).
    assert process.worst_window_cpu_s(window_s) <= budget_s * 1.05
    # The budget is used, not just respected: at least 85% of it goes to forwards and requests.
    assert process.cpu / took_s >= 0.85 * budget_s / window_s
    assert pacer.waited_s > 0


@pytest.mark.parametrize("other_cpus", [0.0, 0.05], ids=["alone", "beside-requests"])
def test_a_forward_over_the_budget_runs_in_a_window_of_its_own(other_cpus):
    process, pacer, _ = paced_run(per_image_s=0.06, budget_s=0.045, window_s=0.1, other_cpus=other_cpus, images=20)
    assert pacer.images_per_piece(8) == 1
    assert process.worst_window_cpu_s(0.1) <= (0.06 + 0.1 * other_cpus) * 1.05


@pytest.mark.parametrize("other_cpus, paced", [(0.2, True), (0.5, False), (0.9, False)],
                         ids=["requests-leave-room", "requests-alone-over-the-budget", "a-storm-of-refusals"])
def test_forwards_are_not_held_back_where_the_rest_of_the_process_fills_the_budget(other_cpus, paced):
    """Request threads that use more of a CPU than the budget leaves the forwards (clients retrying their 503s at
    once) fill every window whatever the model thread does: waiting would only slow the queue."""
    process, pacer, took_s = paced_run(per_image_s=0.007, budget_s=0.045, window_s=0.1, other_cpus=other_cpus,
                                       images=200)
    unpaced_s = 200 * 0.007
    if paced:
        assert took_s > 1.5 * unpaced_s   # the forwards wait for the budget: 45 ms a window, 20 ms of it taken
    else:
        assert pacer.waited_s <= 0.3   # the first forwards' waits, until the request threads' rate was seen
        assert took_s <= unpaced_s + 0.3


@pytest.mark.parametrize("history, images, expected_s", [
    ([], 1, 0.0),
    ([(0.0, 0.0), (0.05, 0.01)], 1, 0.0),
    ([(0.0, 0.0), (0.05, 0.045)], 1, 0.05 * 0.005 / 0.045 + 0.1 - 0.005 - 0.05),
    ([(0.0, 0.0), (0.02, 0.02), (0.05, 0.02), (0.07, 0.045)], 1, 0.005 + 0.1 - 0.005 - 0.07),
], ids=["no-history", "room-left", "window-full-spread", "window-full-in-two-bursts"])
def test_the_delay_is_until_enough_of_the_window_has_slid_out(history, images, expected_s):
    now = {"t": 0.0, "cpu": 0.0}
    pacer = Pacer(0.045, 0.1, cpu_clock=lambda: now["cpu"], clock=lambda: now["t"], sleep=lambda s: None)
    pacer.spent(1, (-0.005, -0.005))   # one image takes 5 ms of CPU in 5 ms, learnt at (0, 0)
    for t, cpu in history:
        pacer.observe(t, cpu)
    t, cpu = history[-1] if history else (0.0, 0.0)
    assert pacer.delay_s(t, cpu, images) == pytest.approx(expected_s)


@pytest.mark.parametrize("budget_s, window_s", [(0.0, 0.1), (-1.0, 0.1), (0.05, 0.0)],
                         ids=["no-budget", "negative-budget", "no-window"])
def test_a_pacer_without_room_is_refused(budget_s, window_s):
    with pytest.raises(ValueError, match="budget"):
        Pacer(budget_s, window_s)


WORKER = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    from inference.cpu_quota import Pacer, read_quota
    quota = read_quota()
    print(quota.cpus, quota.period_s, flush=True)
    pacer = Pacer(0.9 * quota.cpus * quota.period_s, quota.period_s) if sys.argv[1] == "paced" else None
    a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    end = time.monotonic() + 3.0
    while time.monotonic() < end:      # forwards of 5 ms of CPU, as fast as the quota lets them run
        started = pacer.wait(1) if pacer else None
        t = time.thread_time()
        while time.thread_time() - t < 0.005:
            a @ a
        if pacer:
            pacer.spent(1, started)
""")

writable = os.access(CPU_HIERARCHY, os.W_OK) and (CPU_HIERARCHY / "tasks").is_file()


@pytest.mark.skipif(not writable, reason=f"no writable cgroup v1 cpu hierarchy at {CPU_HIERARCHY} (needs root)")
@pytest.mark.parametrize("mode, most_throttled", [("paced", 0.1), ("unpaced", None)], ids=["paced", "unpaced"])
def test_under_a_real_quota_a_paced_process_is_not_throttled(mode, most_throttled):
    with cpu_group(0.5) as group:
        stat = lambda: dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())  # noqa: E731
        before = stat()
        with joined(group):
            # On the last CPU: a busy neighbour (CI's check beside a loop on CPU 0) would keep it under its quota.
            done = subprocess.run(["taskset", "-c", str(max(os.sched_getaffinity(0))), sys.executable, "-c", WORKER,
                                   mode], capture_output=True, text=True, timeout=120, cwd=os.getcwd())
        after = stat()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["0.5", "0.1"]   # the child read its own quota
    periods = int(after["nr_periods"]) - int(before["nr_periods"])
    throttled = (int(after["nr_throttled"]) - int(before["nr_throttled"])) / max(1, periods)
    assert periods >= 20
    if most_throttled is None:
        assert throttled >= 0.5   # the control: unpaced, the same work runs into the quota most periods
    else:
        assert throttled <= most_throttled


def test_the_model_thread_runs_paced_pieces_and_reports_the_wait_apart_from_the_forward():
    """The Batcher with a pacer, on simulated time: forwards of 10 ms of CPU per image, a 45 ms budget."""
    process = FakeProcess(other_cpus=0.0)
    pacer = Pacer(0.045, 0.1, cpu_clock=lambda: process.cpu, clock=lambda: process.now,
                  sleep=lambda s: process.advance(s, 0.0), thread_clock=lambda: process.forward_cpu)

    def forward(images):
        process.advance(0.01 * len(images), 1.0)
        return np.full((len(images), 1000), 1e-3, dtype=np.float32)

    stats = []
    batcher = Batcher(forward, max_batch_size=8, max_delay_s=0.0, max_queue=64, clock=lambda: process.now,
                      on_batch=stats.append, pacer=pacer)
    jobs = [batcher.submit(np.zeros((1, 224, 224, 3), np.uint8), deadline=1e9) for _ in range(12)]
    while any(not job.done.is_set() for job in jobs):
        batcher.run_once()
    assert [s.size for s in stats][:3] == [1, 1, 1]   # a quarter of 45 ms holds one 10 ms image
    assert all(s.model_s == pytest.approx(0.01 * s.size) for s in stats)   # the forward alone
    assert sum(s.paced_s for s in stats) > 0
    assert process.worst_window_cpu_s(0.1) <= 0.045 * 1.05


@pytest.mark.skipif(not writable, reason=f"no writable cgroup v1 cpu hierarchy at {CPU_HIERARCHY} (needs root)")
def test_a_gunicorn_worker_under_a_real_quota_reads_it_and_paces_itself(tmp_path):
    """The service under a real gunicorn in a half-CPU quota group, with CPU_QUOTA_TARGET set: its ready line
    names the quota, its forwards wait for the quota, and the kernel seldom has to stop it."""
    with cpu_group(0.5) as group:
        with joined(group):
            server = start_gunicorn(tmp_path, env={"CPU_QUOTA_TARGET": "0.9", "MAX_QUEUE_WAIT_MS": "0"})
        try:
            url = server.extra["url"]
            stat = lambda: dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())  # noqa: E731
            before = stat()
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _: requests.post(f"{url}/predict", data=JPEG, timeout=120,
                                                              headers={"Content-Type": "image/jpeg"}).status_code,
                                      range(96)))
            after = stat()
            metrics = requests.get(f"{url}/metrics", timeout=30).text
        finally:
            server.stop()
    assert codes == [200] * 96
    assert "a CPU quota of 0.5 CPU per 100 ms, paced to 0.9 of this worker's share" in server.log()
    waited = [float(line.split()[-1]) for line in metrics.splitlines()
              if line.startswith("inference_cpu_quota_wait_seconds_total ")]
    assert waited and waited[0] > 0
    periods = int(after["nr_periods"]) - int(before["nr_periods"])
    assert periods >= 10
    assert int(after["nr_throttled"]) - int(before["nr_throttled"]) <= 0.25 * periods
