"""Micro-batching: request threads submit preprocessed images, one model thread runs them in batches.

Admission is by time: a request is admitted only when it is predicted to be computed within `max_wait_s`
(what is left of the forward in progress, the full batches ahead of it, then its own forward, at the
seconds per image the queue recently drained at, with a margin for how much that varied:
inference/drain.py), so the queue means the same time on any CPU, at any precision and under any CPU quota.
Its own forward is inside the budget, so an admitted request is answered within about the budget: the HTTP
work around it has the forward's time to spare. The budget never drops below two full batches' forwards:
one running, one waiting full to start next. A count of images (`max_queue`) stays as a hard bound on memory
and threads. A refused request is answered at once (503 with the seconds after which the queue should have
room). A job whose deadline passed before its forward starts is failed, never computed. The clock is
injectable so the rules can be tested without sleeping.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Callable

import numpy as np

from inference import cpu_pinning
from inference.cpu_quota import Pacer
from inference.drain import PerImageEstimate
from inference.jobs import BatchStats, DeadlineExceeded, Job, Overloaded

log = logging.getLogger(__name__)


class Batcher:
    def __init__(self, run_batch: Callable[[np.ndarray], np.ndarray], max_batch_size: int,
                 max_delay_s: float, max_queue: int, max_wait_s: float = 0.0,
                 on_batch: Callable[[BatchStats], None] | None = None,
                 on_depth: Callable[[int], None] | None = None, on_expired: Callable[[Job], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, pacer: Pacer | None = None):
        self._run_batch = run_batch
        self._pacer = pacer
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s  # 0: admission by count only
        self._per_image_s: float | None = None  # unknown until the first forward has finished
        self._estimate = PerImageEstimate()  # what _per_image_s is taken from
        self._running_images = 0  # in the forward in progress, started at _running_since
        self._running_since = 0.0
        self._cycle_from: tuple[float, int] | None = None  # (start, images) of a forward a full batch followed
        self._on_batch = on_batch or (lambda stats: None)
        self._on_depth = on_depth or (lambda depth: None)
        self._on_expired = on_expired or (lambda job: None)
        self._clock = clock
        self._queue: collections.deque[Job] = collections.deque()
        self._depth = 0  # images admitted (being preprocessed or queued), not yet taken by the model thread
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    # --- request side ---
    @property
    def depth(self) -> int:
        return self._depth

    @property
    def per_image_s(self) -> float | None:
        """Seconds the queue takes per image, as it recently drained, with a margin for how much that varied;
        None before the first forward."""
        return self._per_image_s

    def predicted_wait_s(self) -> float:
        """How long a request admitted now would wait for its forward to start (0 before any forward)."""
        with self._cond:
            return self._predicted_wait_s(self._clock())

    def _predicted_wait_s(self, now: float, ahead: int = 0) -> float:
        """How long a request admitted now would wait for its forward to start, were `ahead` more images
        admitted before it."""
        if self._per_image_s is None:
            return 0.0
        running_left = max(0.0, self._running_images * self._per_image_s - (now - self._running_since))
        # Forwards run whole batches: the images ahead that do not fill one share the request's own forward.
        batches_ahead = (self._depth + ahead) // self.max_batch_size
        return running_left + batches_ahead * self.max_batch_size * self._per_image_s

    def wait_budget_s(self) -> float:
        """What admission allows until a request's forward ends: max_wait_s, but at least two full batches'
        forwards (one running, one waiting full to start next)."""
        if self._per_image_s is None:
            return self.max_wait_s
        return max(self.max_wait_s, 2 * self.max_batch_size * self._per_image_s)

    def _predicted_done_s(self, now: float, ahead: int = 0) -> float:
        """How long until the forward of a request admitted now (after `ahead` more images) would end: its
        wait, then a full batch."""
        if self._per_image_s is None:
            return 0.0
        return self._predicted_wait_s(now, ahead) + self.max_batch_size * self._per_image_s

    def admit(self, images: int) -> None:
        """Count `images` against the queue now, before they are preprocessed, or raise Overloaded.

        Counting at admission (not only once preprocessed) bounds the request threads that can end up
        waiting for the model, so some are always free to answer 503 quickly.
        """
        with self._cond:
            self._refuse_if_full(images)
            self._depth += images
            self._on_depth(self._depth)

    def check_room(self) -> None:
        """Raise Overloaded where admit() would refuse one image now. Called before a request's body is read, so
        a refusal under overload costs no parsing; admit() still decides, with the request's image count."""
        with self._cond:
            self._refuse_if_full(1)

    def has_room(self, images: int) -> bool:
        """Whether `images` more requests of one image would each be admitted now, by admit()'s rules: the last
        of them must fit the count and the wait budget. Counts nothing."""
        with self._cond:
            return self._refusal(images, ahead=images - 1) is None

    def _refuse_if_full(self, images: int) -> None:
        """Raise Overloaded if `images` more cannot be admitted now (the caller holds the lock)."""
        refusal = self._refusal(images)
        if refusal is not None:
            raise refusal

    def _refusal(self, images: int, ahead: int = 0) -> Overloaded | None:
        """Why a request of `images` cannot be admitted now, were `ahead` more images admitted before it, or
        None (the caller holds the lock). Its first image must be computed within the budget: a request of
        more images than one budget computes is still admitted on an idle worker."""
        if self._closing:
            return Overloaded("draining", "this worker is shutting down; retry, another replica will answer")
        if self._depth + images > self.max_queue:
            return Overloaded("queue_full", f"the queue is full ({self._depth} of {self.max_queue} images "
                              "waiting); retry after a moment or add replicas")
        if self.max_wait_s > 0:
            done_s, budget_s = self._predicted_done_s(self._clock(), ahead), self.wait_budget_s()
            if done_s > budget_s:
                return Overloaded("queue_full", f"the queue is full: a request admitted now would be computed in "
                                  f"about {done_s * 1000:.0f} ms, over the {budget_s * 1000:.0f} ms allowed "
                                  "(MAX_QUEUE_WAIT_MS); retry after a moment or add replicas",
                                  max(1, math.ceil(done_s - budget_s)))  # Retry-After: drains the excess
        return None

    def cancel(self, images: int) -> None:
        """Give back an admission whose images never reached the queue (the upload was bad)."""
        with self._cond:
            self._depth -= images
            self._on_depth(self._depth)

    def submit(self, images: np.ndarray, deadline: float, admitted: bool = False) -> Job:
        """Queue preprocessed images; `admitted` when `admit()` already counted them."""
        job = Job(images=images, deadline=deadline)
        if not admitted:
            self.admit(job.size)
        with self._cond:
            job.enqueued_at = self._clock()
            self._queue.append(job)
            self._cond.notify()
        return job

    # --- model side ---
    def start(self, prepare: Callable[[], None] | None = None, nice: int = 0) -> None:
        """Start the model thread; return once it has run `prepare` (the warm-up), re-raising its error.

        The thread lowers its own CPU priority by `nice` first, and the warm-up runs on it, so the thread
        pools the backend creates on its first forwards inherit that priority too: request threads, which
        answer 503s and probes and decode uploads, then get a core before the next forward does.
        """
        prepared = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                cpu_pinning.lower_priority(nice)
                if prepare is not None:
                    prepare()
            except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
                failure.append(exc)
                return
            finally:
                prepared.set()
            self._loop()

        self._thread = threading.Thread(target=run, name="model", daemon=True)
        self._thread.start()
        prepared.wait()
        if failure:
            raise failure[0]

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout_s: float | None = None) -> None:
        """Refuse new work, finish everything queued, then stop the model thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _take_batch(self) -> list[Job] | None:
        """Block for the first job, then gather more for up to max_delay_s while the batch has room."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            batch = [self._queue.popleft()]
            count, most = batch[0].size, self._piece_limit()
            wait_until = self._clock() + self.max_delay_s
            while count < most:
                if self._queue:
                    if count + self._queue[0].size > most:
                        break
                    job = self._queue.popleft()
                    batch.append(job)
                    count += job.size
                    continue
                remaining = wait_until - self._clock()
                if remaining <= 0 or self._closing:
                    break
                self._cond.wait(remaining)
            self._depth -= count
            self._on_depth(self._depth)
            return batch

    def run_once(self) -> bool:
        """Take one batch and run it; False once closed and empty. The model thread's whole job."""
        batch = self._take_batch()
        if batch is None:
            return False
        now = self._clock()
        live = []
        for job in batch:
            if now > job.deadline:
                job.queue_s = now - job.enqueued_at
                self._on_expired(job)
                job.finish(error=DeadlineExceeded(
                    f"waited {job.queue_s:.2f}s in the queue, past the request deadline; the service is "
                    "overloaded: retry later or add replicas"))
            else:
                live.append(job)
        if not live:
            with self._cond:
                self._cycle_from = None   # no forward to time the cycle to
            return True
        images = live[0].images if len(live) == 1 else np.concatenate([job.images for job in live])
        started = self._clock()
        with self._cond:
            self._running_images, self._running_since = int(images.shape[0]), started
            if self._cycle_from is not None:
                self._per_image_s = self._estimate.add((started - self._cycle_from[0]) / self._cycle_from[1])
        paced_before = self._paced_s()
        try:
            # A job larger than a batch (one request with many images) runs in batch-sized chunks.
            most = self._piece_limit()
            probs = np.concatenate([self._forward(images[i:i + most]) for i in range(0, images.shape[0], most)])
        except Exception as exc:  # noqa: BLE001 - report to every waiting request, keep serving
            with self._cond:
                self._running_images, self._cycle_from = 0, None
            log.exception("model forward failed")
            for job in live:
                job.finish(error=exc)
            return True
        elapsed_s = self._clock() - started
        self._learn(started, elapsed_s, int(images.shape[0]))   # what the queue drains at, pacing included
        paced_s = self._paced_s() - paced_before
        model_s = max(0.0, elapsed_s - paced_s)
        offset = 0
        for job in live:
            job.queue_s = started - job.enqueued_at + paced_s
            job.model_s = model_s
            job.batch_size = images.shape[0]
            job.finish(probs=probs[offset:offset + job.size])
            offset += job.size
        self._on_batch(BatchStats(int(images.shape[0]), model_s, [j.queue_s for j in live], paced_s))
        return True

    def _piece_limit(self) -> int:
        """Images per forward: a batch, or fewer where the CPU quota's budget takes fewer at once."""
        return self._pacer.images_per_piece(self.max_batch_size) if self._pacer else self.max_batch_size

    def _paced_s(self) -> float:
        """Seconds the pacer has held the forwards back so far."""
        return self._pacer.waited_s if self._pacer else 0.0

    def _forward(self, images: np.ndarray) -> np.ndarray:
        if self._pacer is None:
            return self._run_batch(images)
        started = self._pacer.wait(int(images.shape[0]))
        probs = self._run_batch(images)
        self._pacer.spent(int(images.shape[0]), started)
        return probs

    def _learn(self, started: float, model_s: float, images: int) -> None:
        """Learn what an image costs the queue. Where a full batch is waiting as this forward ends, the next
        starts at once, and the time from this start to the next is what these images cost: the forward,
        answering its batch, taking the next, and whatever the core did meanwhile for other threads
        (decoding, refusals) or the kernel withheld (a CPU quota's throttling). That cycle is learned when
        the next forward starts. Otherwise the forward's own time is all there is to learn."""
        with self._cond:
            self._running_images = 0
            if sum(job.size for job in self._queue) >= self._piece_limit():
                self._cycle_from = (started, images)
            else:
                self._cycle_from = None
                self._per_image_s = self._estimate.add(model_s / images)

    def _loop(self) -> None:
        while self.run_once():
            pass
