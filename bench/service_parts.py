"""What the service benchmark measures (bench/bench_service.py runs them): the candidates (each backend and
precision), the in-process ceiling of each, and the servers: the service under gunicorn and the
prototype-style baseline.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.clients import Sample, closed_loop
from bench.ideal_queue import ideal_latencies_s
from processes.children import PYTHON, REPO, Child, child_pids, wait_ready, wait_until
from processes.net import free_port, http_ok
from processes.services import ready_workers, start_gunicorn
from sim.batch_time import BatchTime

IMAGES_DIR = REPO / "loadtester" / "images"


def bench_image_paths() -> list[Path]:
    files = sorted(p for p in IMAGES_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images in {IMAGES_DIR}")
    return files


def bench_images() -> list[bytes]:
    return [p.read_bytes() for p in bench_image_paths()]


@dataclass(frozen=True)
class Candidate:
    """One backend and precision, measured in-process and served, alternating with the others."""

    backend: str
    precision: str
    cache_dir: str   # the converted model, shared by the candidate's ceiling and service processes

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}"


def candidates(cache_dir: str) -> list[Candidate]:
    """torch, then every other backend installed in FP32, then bf16 where the CPU has it natively."""
    from inference import backends

    found = [Candidate("torch", "fp32", cache_dir)]
    found += [Candidate(b, "fp32", cache_dir) for b in ("openvino", "onnxruntime") if backends.installed(b)]
    if backends.native_bf16(backends.cpu_flags()):
        bf16 = next((b for b in backends.BF16_BACKENDS if backends.installed(b)), None)
        if bf16:
            found.append(Candidate(bf16, "bf16", cache_dir))
    return found


# --- 1. the in-process ceiling ---

def _ceiling_worker(candidate: Candidate, batch: int, threads: int, seconds: float, images: list[bytes], loaded,
                    start, results) -> None:
    import numpy as np

    from inference.model import Classifier
    from inference.preprocess import preprocess

    model = Classifier("random", backend=candidate.backend, precision=candidate.precision, threads=threads,
                       cache_dir=candidate.cache_dir)
    model.warm_up(1, batch)
    loaded.put(os.getpid())
    start.wait()
    done, i = 0, 0
    deadline = time.perf_counter() + seconds
    begun = time.perf_counter()
    while time.perf_counter() < deadline:
        tensors = [preprocess(images[(i + k) % len(images)], 10**9) for k in range(batch)]
        model.probabilities(np.stack(tensors))
        done += batch
        i += batch
    results.put(done / (time.perf_counter() - begun))


def ceiling(candidate: Candidate, processes: int, threads: int, batch: int, seconds: float,
            images: list[bytes]) -> float:
    """Images/s of `processes` independent workers, each decoding, preprocessing and running batches."""
    ctx = mp.get_context("spawn")  # torch and OpenMP are not fork-safe
    loaded, start, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_ceiling_worker,
                         args=(candidate, batch, threads, seconds, images, loaded, start, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:  # every worker has loaded and warmed its model: start the clock for all at once
        loaded.get(timeout=300)
    start.set()
    rates = [results.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join(30)
    return sum(rates)


# --- servers ---

def start_service(tmp: Path, candidate: Candidate, workers: int, threads: int = 1,
                  extra_env: dict[str, str] | None = None):
    settings = {"MODEL_WEIGHTS": "random", "TORCH_THREADS": str(threads), "MODEL_BACKEND": candidate.backend,
                "MODEL_PRECISION": candidate.precision, "MODEL_CACHE_DIR": candidate.cache_dir, **(extra_env or {})}
    child = start_gunicorn(tmp, name="service", workers=workers, settings=settings, wait_workers=1,
                           ready_timeout_s=300)
    return child, child.extra["port"]


def fork_to_ready_s(child, tmp: Path) -> float:
    """Seconds from TTIN to the new worker's ready marker: what a scale-up waits for on the local stack.

    The converted model is already cached by then (the service's first workers wrote it), as it is in a pod
    whose image baked it in.
    """
    pidfile = tmp / "gunicorn.pid"
    before = set(ready_workers(pidfile))
    started = time.monotonic()
    os.kill(child.pid, signal.SIGTTIN)
    wait_until(lambda: not child.alive() or set(ready_workers(pidfile)) - before, timeout_s=300, interval_s=0.01,
               what="the added worker")
    if not child.alive():
        raise RuntimeError(f"the service stopped while a worker was being added; its log:\n{child.log()[-4000:]}")
    return time.monotonic() - started


def start_baseline(tmp: Path, workers: int):
    port = free_port()
    argv = [PYTHON, "-m", "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
            "--no-control-socket", "bench.prototype_app:app"]
    child = Child("baseline", argv, tmp)
    wait_ready(child, lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout_s=300, what="the baseline")
    return child, port


def best_closed_loop(port: int, levels: list[int], seconds: float, images: list[bytes]) -> tuple[int, Sample]:
    results = [(c, closed_loop(port, c, seconds, images)) for c in levels]
    return max(results, key=lambda r: r[1].rate())


# --- the ideal queue fed the ceiling's batch times ---

def ceiling_batch_time(per_process_rps: dict[int, float], max_batch: int) -> BatchTime:
    """Batch time per size, from the ceiling's images/s of one process at batch 1 and at a full batch."""
    return BatchTime.through(1 / per_process_rps[1], max_batch / per_process_rps[max_batch], max_batch)


def ideal_p99_ms(sample: Sample, workers: int, per_process_rps: dict[int, float], max_batch: int,
                 slowdown: float = 1.0) -> float:
    """p99 of the ideal shared batching queue fed this run's arrivals and the measured batch times
    (`slowdown` times them: the bound at the speed the service's own batches ran)."""
    batch_time = ceiling_batch_time(per_process_rps, max_batch).scaled(slowdown)
    latencies = ideal_latencies_s(sorted(sample.scheduled_s), workers, max_batch, batch_time)
    return float(sorted(latencies)[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))] * 1000)


# --- where a worker's CPU goes ---

def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of `pid` so far."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def decode_cpu_ms(images: list[bytes], rounds: int = 50) -> float:
    """CPU ms to decode and preprocess one image, in this thread, over `rounds` passes of `images`."""
    from inference.preprocess import preprocess

    for data in images:   # warm: first calls import codecs and allocate
        preprocess(data, 10**9)
    started = time.thread_time()
    for _ in range(rounds):
        for data in images:
            preprocess(data, 10**9)
    return (time.thread_time() - started) * 1000 / (rounds * len(images))


def front_cpu(master_pid: int, port: int, concurrency: int, seconds: float, images: list[bytes],
              decode_ms: float) -> dict:
    """A saturated worker's CPU per answered request, split: its busiest thread (the model thread: batching,
    the forward, top-k), the rest (gunicorn's accept loop, the request threads: HTTP, routing, decoding,
    metrics, JSON) and of that rest what is neither decoding (`decode_ms`, measured in-process) nor the
    model thread's: the HTTP front. One worker under `master_pid`; closed loop at `concurrency`."""
    worker = child_pids(master_pid)[0]
    before = thread_cpu_s(worker)
    sample = closed_loop(port, concurrency, seconds, images, warmup_s=0)
    after = thread_cpu_s(worker)
    answered = max(1, sum(1 for status in sample.statuses if status == 200))
    used = sorted(((after[t] - before.get(t, 0.0)) * 1000 / answered for t in after), reverse=True)
    rest = sum(used[1:])
    return {"model_thread_ms": used[0], "other_threads_ms": rest, "decode_ms": decode_ms,
            "front_ms": rest - decode_ms, "requests": answered}
