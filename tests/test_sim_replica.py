"""The simulated replica against hand-computed timings of the service's admission, batching and deadlines."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sim.profile import Profile
from sim.replica import DEADLINE_504, OK, PENDING, REJECTED_503, Replica

# Round numbers so every expected latency can be worked out by hand (ms).
PROFILE = Profile(model_intercept_ms=10.0, model_per_image_ms=15.0, preprocess_ms=2.0, overhead_ms=1.0,
                  max_batch_size=8, max_batch_delay_ms=2.0, queue_limit=24, queue_wait_ms=0.0,
                  request_timeout_s=10.0).validate()


def model_ms(images: int) -> float:
    return 10.0 + 15.0 * images


class Sink:
    def __init__(self, n: int):
        self.code = np.full(n, PENDING, dtype=np.int8)
        self.latency_ms = np.full(n, np.nan)

    def record(self, ids, codes, latency_s, replica_id):
        self.code[ids] = codes
        self.latency_ms[ids] = latency_s * 1000.0


def replay(times_s, profile=PROFILE, until_s=100.0):
    times_s = np.asarray(times_s, dtype=np.float64)
    sink = Sink(len(times_s))
    replica = Replica(0, profile, 0.0, sink)
    replica.add_arrivals(times_s, np.arange(len(times_s)))
    replica.advance(until_s)
    return replica, sink


@pytest.mark.parametrize("delay_ms", [0.0, 2.0], ids=["no-batch-delay", "waits-the-batch-delay"])
def test_a_lone_request_takes_overhead_preprocess_delay_and_one_forward(delay_ms):
    profile = replace(PROFILE, max_batch_delay_ms=delay_ms)
    _, sink = replay([1.0], profile)
    assert sink.code[0] == OK
    assert sink.latency_ms[0] == pytest.approx(1.0 + 2.0 + delay_ms + model_ms(1))


@pytest.mark.parametrize("n, expected_ms", [
    (8, [2.0 + model_ms(8) + 1.0] * 8),
    # The ninth waits for the first forward, then the delay for company, then runs alone.
    (9, [2.0 + model_ms(8) + 1.0] * 8 + [2.0 + model_ms(8) + 2.0 + model_ms(1) + 1.0]),
], ids=["exactly-a-full-batch", "one-more-than-a-batch"])
def test_a_burst_forms_full_batches(n, expected_ms):
    times = 1.0 + np.arange(n) * 1e-9   # all at once, in order
    _, sink = replay(times)
    assert (sink.code == OK).all()
    np.testing.assert_allclose(sink.latency_ms, expected_ms, atol=1e-3)


@pytest.mark.parametrize("burst, rejected", [(24, 0), (25, 1), (40, 16)],
                         ids=["fills-the-queue", "one-over", "sixteen-over"])
def test_a_full_queue_answers_503_at_once(burst, rejected):
    _, sink = replay(1.0 + np.arange(burst) * 1e-9)
    assert int((sink.code == REJECTED_503).sum()) == rejected
    assert (sink.code[:24] == OK).all()                    # the first 24 were admitted
    np.testing.assert_allclose(sink.latency_ms[sink.code == REJECTED_503], 1.0, atol=1e-3)


# A full batch's forward is 130 ms. A request is admitted while what is left of the forward in progress, the
# full batches queued ahead of it and its own forward come to at most the budget (never under two batches,
# 260 ms): with 8 k to 8 k + 7 queued, it is computed after k + 1 batches.
@pytest.mark.parametrize("wait_ms, limit, admitted", [
    (400.0, 64, 24), (100.0, 64, 16), (530.0, 64, 32), (530.0, 24, 24), (0.0, 64, 64),
], ids=["budget", "budget-floor-two-batches", "longer-budget", "count-binds-first", "off-count-only"])
def test_admission_is_by_predicted_wait(wait_ms, limit, admitted):
    _, sink = replay(1.0 + np.arange(80) * 1e-9, replace(PROFILE, queue_wait_ms=wait_ms, queue_limit=limit))
    assert (sink.code[:admitted] == OK).all()
    assert (sink.code[admitted:] == REJECTED_503).all()


def test_the_forward_in_progress_counts_for_what_is_left_of_it():
    # 8 at t=1 run from 1.002 to 1.132 s; at 1.05 s, 82 ms of that forward is left: with a 200 ms budget
    # (260 ms, two batches) no full batch more fits behind it (82 + 130 + 130 > 260), so 8 of a burst of 40
    # are admitted (16 when idle).
    times = np.concatenate([1.0 + np.arange(8) * 1e-9, 1.05 + np.arange(40) * 1e-9])
    _, sink = replay(times, replace(PROFILE, queue_wait_ms=200.0))
    assert (sink.code[:8 + 8] == OK).all()
    assert int((sink.code == REJECTED_503).sum()) == 40 - 8


def test_a_taken_batch_makes_room_for_later_arrivals():
    # 24 at t=1 fill the queue; the first batch is taken at 1.002 s, so 8 more fit after that.
    times = np.concatenate([1.0 + np.arange(24) * 1e-9, 1.01 + np.arange(10) * 1e-9])
    _, sink = replay(times)
    assert int((sink.code == REJECTED_503).sum()) == 2


def test_a_job_past_its_deadline_gets_504_and_is_never_computed():
    profile = replace(PROFILE, request_timeout_s=0.05)
    replica, sink = replay(1.0 + np.arange(24) * 1e-9, profile)
    # The first batch starts at once; the next two would start after 142 ms, past the 50 ms deadline.
    assert (sink.code[:8] == OK).all()
    assert (sink.code[8:] == DEADLINE_504).all()
    # Answered when the model thread takes them (right after the first forward), not computed.
    np.testing.assert_allclose(sink.latency_ms[8:], 2.0 + model_ms(8) + 1.0, atol=1e-3)
    assert replica.sample(100.0).cpu_seconds_total == pytest.approx(model_ms(8) / 1000.0)


@pytest.mark.parametrize("gap_ms, same_batch", [(1.0, True), (3.0, False)],
                         ids=["within-the-delay-joins", "after-the-delay-waits"])
def test_the_batching_delay_decides_who_shares_a_forward(gap_ms, same_batch):
    _, sink = replay([1.0, 1.0 + gap_ms / 1000.0])
    if same_batch:
        # The second is queued within the first's 2 ms wait; the batch is not full, so it still closes
        # when the delay runs out, and both run in one forward.
        expected = [2.0 + 2.0 + model_ms(2) + 1.0, 2.0 + 2.0 - gap_ms + model_ms(2) + 1.0]
    else:
        first = 2.0 + 2.0 + model_ms(1) + 1.0
        # The second is queued during the first forward and taken when it ends, then waits the delay.
        second = (2.0 + 2.0 + model_ms(1)) - gap_ms + 2.0 + model_ms(1) + 1.0
        expected = [first, second]
    np.testing.assert_allclose(sink.latency_ms, expected, atol=1e-3)


def test_counters_at_a_scrape_inside_a_forward():
    replica, sink = replay(1.0 + np.arange(10) * 1e-9, until_s=1.05)
    sample = replica.sample(1.05)              # the first forward (1.002 .. 1.132) is running
    assert sample.requests_total == 0
    assert sample.inflight == 10
    assert sample.queue_depth == 2             # the 8 in the forward left the queue when it was taken
    assert sample.cpu_seconds_total == pytest.approx(1.05 - 1.002)
    replica.advance(10.0)
    sample = replica.sample(10.0)
    assert sample.requests_total == sample.latency_count == 10
    assert sample.inflight == 0 and sample.queue_depth == 0
    assert sample.latency_sum_s == pytest.approx(np.nansum(sink.latency_ms) / 1000.0)
    # Cumulative buckets: the 8 (133 ms) first count at le=0.15, the 2 (1.132 + 2 ms delay + 40 ms
    # forward + 1 ms: 175 ms) at le=0.2.
    buckets = dict(zip((0.1, 0.15, 0.2, float("inf")), (sample.latency_bucket_counts[i] for i in (5, 6, 7, -1))))
    assert buckets == {0.1: 0, 0.15: 8, 0.2: 10, float("inf"): 10}


def test_work_in_small_steps_equals_work_in_one():
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0, 60, 4000))   # ~67 req/s: batches fill, the queue overflows at times
    _, whole = replay(times)
    sink = Sink(len(times))
    replica = Replica(0, PROFILE, 0.0, sink)
    for lo, hi in zip(range(0, 60, 3), range(3, 63, 3)):
        mine = (times >= lo) & (times < hi)
        replica.add_arrivals(times[mine], np.flatnonzero(mine))
        replica.advance(hi)
    replica.drain()
    np.testing.assert_array_equal(sink.code, whole.code)
    np.testing.assert_allclose(sink.latency_ms, whole.latency_ms)
    assert (whole.code == REJECTED_503).any() and (whole.code == OK).any()


@pytest.mark.parametrize("factor", [1.0, 1.2, 1.5], ids=["alone", "shared-a-fifth", "shared-a-half"])
def test_a_slowdown_stretches_the_forward_and_nothing_else(factor):
    sink = Sink(2)
    replica = Replica(0, PROFILE, 0.0, sink)
    replica.set_slowdown(factor)
    replica.add_arrivals(np.array([1.0, 1.0 + 1e-9]), np.arange(2))
    replica.advance(10.0)
    assert replica.slowdown == factor
    np.testing.assert_allclose(sink.latency_ms, 2.0 + 2.0 + model_ms(2) * factor + 1.0, atol=1e-6)
    assert replica.busy_s(10.0) == pytest.approx(model_ms(2) * factor / 1000.0)


def test_a_forward_keeps_the_slowdown_it_started_with():
    sink = Sink(2)
    replica = Replica(0, PROFILE, 0.0, sink)
    replica.add_arrivals(np.array([1.0, 2.0]), np.arange(2))
    replica.advance(1.010)                      # the first forward (1.004 .. 1.029) is under way
    replica.set_slowdown(2.0)
    replica.advance(10.0)
    assert sink.latency_ms[0] == pytest.approx(2.0 + 2.0 + model_ms(1) + 1.0)
    assert sink.latency_ms[1] == pytest.approx(2.0 + 2.0 + 2 * model_ms(1) + 1.0)


@pytest.mark.parametrize("t_s, busy_ms", [(1.0, 0.0), (1.014, 10.0), (1.029, 25.0), (5.0, 25.0)],
                         ids=["before", "mid-forward", "at-its-end", "after"])
def test_busy_seconds_count_only_the_forward_done_by_then(t_s, busy_ms):
    replica, _ = replay([1.0], until_s=t_s)     # the forward runs 1.004 .. 1.029
    assert replica.busy_s(t_s) * 1000 == pytest.approx(busy_ms, abs=1e-6)
    assert replica.sample(t_s).cpu_seconds_total * 1000 == pytest.approx(busy_ms, abs=1e-6)


@pytest.mark.parametrize("factor", [0.5, 0.0, float("nan")], ids=["faster", "zero", "nan"])
def test_a_slowdown_below_one_is_refused(factor):
    replica = Replica(0, PROFILE, 0.0, Sink(1))
    with pytest.raises(ValueError, match="slowdown factor must be >= 1"):
        replica.set_slowdown(factor)
