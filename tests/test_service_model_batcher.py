"""The batcher, on models that record what they were given or take a set time on an injected clock: batching
and chunking, admission by count and by predicted wait, what the seconds per image learn, deadlines, closing and a
failing forward."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

from inference.batcher import Batcher
from inference.jobs import DeadlineExceeded, Overloaded
from tests.support import wait_until


# --- the batcher, with a model that records what it was given ---

class RecordingModel:
    def __init__(self):
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.gate.wait(30)
        self.sizes.append(int(batch.shape[0]))
        return np.full((batch.shape[0], 1000), float(len(self.sizes)))


def one(n: int = 1) -> np.ndarray:
    return np.zeros((n, 224, 224, 3), dtype=np.uint8)


@pytest.fixture
def model():
    return RecordingModel()


def test_waiting_requests_are_batched_up_to_the_limit(model):
    batcher = Batcher(model, max_batch_size=4, max_delay_s=0.002, max_queue=32)
    model.gate.clear()
    batcher.start()
    first = batcher.submit(one(), float("inf"))
    wait_until(lambda: batcher.depth == 0, what="the first job to be taken")
    jobs = [batcher.submit(one(), float("inf")) for _ in range(9)]
    model.gate.set()
    for job in [first, *jobs]:
        assert job.done.wait(30)
    batcher.close(5)
    assert model.sizes == [1, 4, 4, 1]
    assert [job.batch_size for job in jobs] == [4] * 8 + [1]


def test_a_request_larger_than_a_batch_runs_in_chunks(model):
    batcher = Batcher(model, max_batch_size=4, max_delay_s=0, max_queue=32)
    batcher.start()
    job = batcher.submit(one(10), float("inf"))
    assert job.done.wait(30) and job.error is None
    assert job.probs.shape == (10, 1000) and model.sizes == [4, 4, 2]
    batcher.close(5)


@pytest.mark.parametrize("queued, incoming, admitted", [(7, 1, True), (8, 1, False), (0, 9, False), (0, 8, True)],
                         ids=["last-slot", "full", "single-request-too-big", "exactly-fits"])
def test_admission_is_bounded_in_images(model, queued, incoming, admitted):
    batcher = Batcher(model, max_batch_size=8, max_delay_s=0, max_queue=8)  # model thread not started
    if queued:
        batcher.submit(one(queued), float("inf"))
    if admitted:
        batcher.admit(incoming)
        batcher.submit(one(incoming), float("inf"), admitted=True)
    else:
        with pytest.raises(Overloaded) as err:
            batcher.submit(one(incoming), float("inf"))
        assert err.value.reason == "queue_full"


class TimedModel:
    """A forward that takes `per_image_s` per image on the batcher's injected clock: no sleeping."""

    def __init__(self, now: list[float], per_image_s: float):
        self.now, self.per_image_s = now, per_image_s
        self.seen_wait_s: list[float] = []
        self.seen_per_image_s: list[float | None] = []
        self.batcher: Batcher | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.batcher is not None:
            self.seen_wait_s.append(self.batcher.predicted_wait_s())
            self.seen_per_image_s.append(self.batcher.per_image_s)
        self.now[0] += self.per_image_s * batch.shape[0]
        return np.zeros((batch.shape[0], 1000))


def timed_batcher(max_wait_s: float, per_image_s: float = 0.02, learned: bool = True) -> Batcher:
    now = [0.0]
    model = TimedModel(now, per_image_s)
    batcher = Batcher(model, max_batch_size=8, max_delay_s=0, max_queue=64, max_wait_s=max_wait_s,
                      clock=lambda: now[0])
    if learned:  # one full forward teaches the batcher its seconds per image
        batcher.submit(one(8), float("inf"))
        assert batcher.run_once()
    model.batcher = batcher
    return batcher


# Batches of 8. A request is computed after the full batches queued ahead of it (images that do not fill one
# share its forward), then its own forward: at 0.02 s per image (0.16 s a batch), 16 to 23 queued images are
# done in 0.48 s, 24 in 0.64 s. The budget is never below two batches' forwards (0.32 s).
@pytest.mark.parametrize("max_wait_s, per_image_s, learned, queued, admitted, retry_after_s", [
    (0.25, 0.02, False, 40, True, None),
    (0.5, 0.02, True, 23, True, None),
    (0.5, 0.02, True, 24, False, 1),
    (0.05, 0.02, True, 15, True, None),
    (0.05, 0.02, True, 16, False, 1),
    (0.0, 0.02, True, 63, True, None),
    (0.25, 0.05, True, 63, False, 3),
], ids=["unmeasured-count-only", "within-budget", "its-wait-fits-but-not-its-forward", "budget-floor-two-batches",
        "over-the-floor", "off-count-only", "retry-after-rounds-up"])
def test_admission_is_by_predicted_wait(max_wait_s, per_image_s, learned, queued, admitted, retry_after_s):
    batcher = timed_batcher(max_wait_s, per_image_s, learned=learned)
    batcher.submit(one(queued), float("inf"))
    if admitted:
        batcher.check_room()  # the check before the body is read agrees, and counts nothing
        batcher.admit(1)
        return
    for check in (batcher.check_room, lambda: batcher.admit(1)):
        with pytest.raises(Overloaded, match="MAX_QUEUE_WAIT_MS") as err:
            check()
        assert (err.value.reason, err.value.retry_after_s) == ("queue_full", retry_after_s)


# has_room(n) asks whether n more one-image requests would each be admitted, without counting: at 0.02 s per
# image and a 0.5 s budget, 17 queued images leave room for one (done in 0.48 s) but not for a batch of them,
# whose last would wait for three batches ahead (done in 0.64 s).
@pytest.mark.parametrize("max_wait_s, queued, images, room", [
    (0.5, 16, 8, True),
    (0.5, 17, 1, True),
    (0.5, 17, 8, False),
    (0.0, 56, 8, True),
    (0.0, 57, 8, False),
], ids=["a-batch-fits-the-wait", "one-image-fits", "a-batch-would-wait-too-long", "a-batch-fits-the-count",
        "a-batch-over-the-count"])
def test_room_for_n_more_requests_is_judged_by_the_last(max_wait_s, queued, images, room):
    batcher = timed_batcher(max_wait_s)
    batcher.submit(one(queued), float("inf"))
    assert batcher.has_room(images) is room
    assert batcher.has_room(images) is room  # asking took no room
    admitted = 0
    with contextlib.suppress(Overloaded):
        for _ in range(images):
            batcher.admit(1)
            admitted += 1
    assert (admitted == images) is room


@pytest.mark.parametrize("queued, closing, reason",
                         [(63, False, None), (64, False, "queue_full"), (0, True, "draining")],
                         ids=["room-for-one", "full-by-count", "closing"])
def test_room_is_checked_for_one_image_without_counting_it(model, queued, closing, reason):
    batcher = Batcher(model, max_batch_size=8, max_delay_s=0, max_queue=64)  # model thread not started
    if queued:
        batcher.submit(one(queued), float("inf"))
    if closing:
        batcher.close(0)
    if reason is None:
        batcher.check_room()
        batcher.check_room()
        batcher.admit(1)  # the checks took no room
        return
    with pytest.raises(Overloaded) as err:
        batcher.check_room()
    assert err.value.reason == reason


def test_the_forward_in_progress_counts_for_what_is_left_of_it():
    batcher = timed_batcher(0.5)
    assert batcher.per_image_s == pytest.approx(0.02)
    for images in (8, 8, 3):
        batcher.submit(one(images), float("inf"))
    assert batcher.predicted_wait_s() == pytest.approx(2 * 0.16)  # two full batches ahead
    assert batcher.run_once()  # takes 8: inside the forward, all of it is left, and one full batch queued
    assert batcher._run_batch.seen_wait_s == [pytest.approx(0.16 + 0.16)]
    assert batcher.predicted_wait_s() == pytest.approx(0.16)  # the forward done, one full batch ahead


@pytest.mark.parametrize("forwards, expected", [
    ([(8, 0.16)], 0.02),
    ([(8, 0.16), (8, 0.32)], 0.0325),     # inference/drain.py: mean 0.0225, twice the deviation 0.005
    ([(1, 0.05), (8, 0.16)], 0.06125),    # mean 0.04625, twice the deviation 0.0075
], ids=["first-forward-sets-it", "a-slow-forward-moves-it-partly", "batch-one-then-full"])
def test_seconds_per_image_follow_the_recent_forwards(forwards, expected):
    batcher = Batcher(RecordingModel(), max_batch_size=8, max_delay_s=0, max_queue=64, max_wait_s=0.25)
    for images, model_s in forwards:
        batcher._learn(0.0, model_s, images)
    assert batcher.per_image_s == pytest.approx(expected)


# One forward of 8 at 0.02 s per image has taught 0.02. Between forwards the model thread answers its batch, and
# the core may go to other threads or be throttled: `between_s` on the clock. Where a full batch is waiting
# as a forward ends, the next starts at once and its start learns the whole cycle (0.16 s + between_s per 8).
@pytest.mark.parametrize("batches, together, between_s, seen", [
    (2, False, 0.08, [0.02, 0.02]),
    (2, True, 0.08, [0.02, 0.02625]),                # the cycle's 0.03 a sample (inference/drain.py)
    (3, True, 0.08, [0.02, 0.02625, 0.03046875]),
    (2, True, 0.0, [0.02, 0.02]),
], ids=["idle-between-forwards-learns-the-forward", "a-full-batch-waiting-learns-the-cycle",
        "each-busy-cycle-moves-it", "a-cycle-with-nothing-else-is-the-forward"])
def test_a_busy_queue_learns_what_an_image_costs_it(batches, together, between_s, seen):
    batcher = timed_batcher(0.5)
    model = batcher._run_batch
    batcher._on_batch = lambda stats: model.now.__setitem__(0, model.now[0] + between_s)
    for _ in range(batches):
        batcher.submit(one(8), float("inf"))
        if not together:
            assert batcher.run_once()
    while len(model.seen_per_image_s) < batches:
        assert batcher.run_once()
    assert model.seen_per_image_s == [pytest.approx(x) for x in seen]


def test_expired_jobs_are_skipped_not_computed(model):
    now = [100.0]
    batcher = Batcher(model, max_batch_size=8, max_delay_s=0, max_queue=8, clock=lambda: now[0])
    stale = batcher.submit(one(), deadline=100.5)
    fresh = batcher.submit(one(), deadline=200.0)
    now[0] = 101.0
    assert batcher.run_once()
    assert isinstance(stale.error, DeadlineExceeded) and stale.probs is None
    assert fresh.error is None and model.sizes == [1]


def test_close_finishes_queued_work_then_refuses(model):
    batcher = Batcher(model, max_batch_size=2, max_delay_s=0, max_queue=8)
    jobs = [batcher.submit(one(), float("inf")) for _ in range(5)]
    batcher.start()
    batcher.close(30)
    assert all(job.done.is_set() and job.error is None for job in jobs)
    assert sum(model.sizes) == 5 and not batcher.alive()
    with pytest.raises(Overloaded) as err:
        batcher.submit(one(), float("inf"))
    assert err.value.reason == "draining"


def test_a_failing_forward_fails_its_jobs_and_the_thread_keeps_serving():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((batch.shape[0], 1000))

    batcher = Batcher(flaky, max_batch_size=8, max_delay_s=0, max_queue=8)
    batcher.start()
    bad = batcher.submit(one(), float("inf"))
    assert bad.done.wait(30) and isinstance(bad.error, RuntimeError)
    good = batcher.submit(one(), float("inf"))
    assert good.done.wait(30) and good.error is None
    batcher.close(5)
