"""One replica of the service: the behaviour of inference/batcher.py and inference/app.py, on simulated time.

What it models (each as the service does it):
- admission: a request is counted against the queue (images admitted and not yet taken by the model
  thread, including those still being preprocessed) when it arrives. It is refused (503 at once; latency:
  the HTTP overhead) when MAX_QUEUE images are queued, or when the time until its forward would end (what
  is left of the forward in progress, the full batches queued ahead of it, then its own, at a full batch's
  seconds per image) exceeds MAX_QUEUE_WAIT_MS (at least two full batches). The service learns its seconds
  per image from how its queue drained, with a margin for how much that varied (inference/drain.py);
  where admission refuses anything its batches are full, as the replica assumes, nothing but the forwards
  takes the replica's model time, and its batch times do not vary, so the margin is nil. A bulk
  of arrivals between two batch starts is admitted with the wait at its first arrival (what is left of
  the forward only shrinks during it), so the replica refuses at most what that difference admits;
- preprocessing on the request threads: a fixed delay per image before the job is queued, in parallel
  with the model (their share of the core is inside the model time at saturation, see sim/profile.py);
- micro-batching: one model thread; when free it takes the first queued job, then waits up to
  MAX_BATCH_DELAY_MS for more while the batch has room; a forward of b images takes model(b);
- deadlines: a job whose REQUEST_TIMEOUT_S passed before its forward starts is answered 504 and
  never computed;
- a slowdown factor (`set_slowdown`, 1 by default) that stretches every forward formed after it is set:
  sim/cluster.py's model of workers sharing one machine's cores (the local stack);
- the metrics Prometheus scrapes (a sim.scrape.TargetSample per scrape): inference_requests_total, the
  request-duration histogram (every answer, 503s and 504s included, as the service's after_request does),
  in-flight requests, the queue gauge, the worker's CPU seconds (the model thread's busy time, which at
  saturation includes the decoding sharing the core, plus the overhead of each 503) and inference_workers.

Work is done in bulk: `add_arrivals()` hands the replica its share of a gap between control events,
`advance(t)` forms every batch that starts by t (a loop per batch, not per request: admission and batch
membership are bisections over the arrival times), and `sample(t)` reads the counters. Outcomes go to an
`OutcomeSink` (the run's per-request arrays) in one vectorised write per advance.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Protocol

import numpy as np

from inference.metrics import LATENCY_BUCKETS_S
from sim.profile import Profile
from sim.scrape import TargetSample

# Per-request outcome codes (int8 in the run's arrays); the names are loadtester.records' kinds.
OK, REJECTED_503, DEADLINE_504, LOST = 0, 1, 2, 3
OUTCOME_KINDS = ("ok", "rejected_503", "deadline_504", "conn_refused")
PENDING = -1

_BUCKETS = np.asarray(LATENCY_BUCKETS_S, dtype=np.float64)


class OutcomeSink(Protocol):
    def record(self, request_ids: np.ndarray, codes: np.ndarray, latency_s: np.ndarray, replica_id: int) -> None: ...


class _Buffer:
    """A growing numpy array (amortised doubling): the replica's arrivals, indexed by local position."""

    def __init__(self, dtype):
        self.data = np.empty(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:need] = values
        self.size = need


class Replica:
    def __init__(self, replica_id: int, profile: Profile, ready_s: float, sink: OutcomeSink):
        self.id = replica_id
        self.ready_s = ready_s
        self.sink = sink
        self._pre_s = profile.preprocess_ms / 1000.0
        self._post_s = profile.overhead_ms / 1000.0
        self._delay_s = profile.max_batch_delay_ms / 1000.0
        self._batch = profile.max_batch_size
        self._limit = profile.queue_limit
        self._wait_s = profile.queue_wait_ms / 1000.0   # 0: by count only
        self._timeout_s = profile.request_timeout_s
        # The profile's forward line (sim/batch_time.py), unpacked: the hot path below runs once per batch.
        self._m0_s = profile.batch_time.intercept_ms / 1000.0
        self._m1_s = profile.batch_time.per_image_ms / 1000.0
        self._slow = 1.0                   # forwards take (m0 + m1 x b) x this (set_slowdown)
        # Arrivals: numpy (every one, for the vectorised outcomes) and Python lists from `_base` on (the
        # loop bisects them; the prefix it is done with is dropped).
        self._times = _Buffer(np.float64)
        self._ids = _Buffer(np.int64)
        self._arr: list[float] = []
        self._enq: list[float] = []        # arrival + preprocess: when the job reaches the queue
        self._base = 0                     # local index of _arr[0]
        self._next = 0                     # local index of the first arrival not yet admitted or refused
        self._qt: list[float] = []         # admitted jobs not yet taken: their enqueue times, FIFO
        self._qi: list[int] = []           # ... and their local indices
        self._free_s = ready_s             # when the model thread finishes its current forward
        self._busy_s = 0.0
        self._rejected = 0
        # Answers not yet counted by a scrape (their time may be after the last one).
        self._pending_done: list[np.ndarray] = []
        self._pending_latency: list[np.ndarray] = []
        self._requests = 0
        self._hist = np.zeros(len(_BUCKETS) + 1, dtype=np.int64)
        self._latency_sum_s = 0.0

    # --- input ---------------------------------------------------------------------------------------
    def add_arrivals(self, times_s: np.ndarray, request_ids: np.ndarray) -> None:
        """Requests routed here, in time order, all later than any given before."""
        if len(times_s) == 0:
            return
        self._times.extend(times_s)
        self._ids.extend(request_ids)
        self._arr.extend(times_s.tolist())
        self._enq.extend((times_s + self._pre_s).tolist())

    @property
    def arrived(self) -> int:
        return self._times.size

    # --- the model thread ----------------------------------------------------------------------------
    def advance(self, until_s: float) -> None:
        """Form and run every batch that starts by until_s. Every arrival up to until_s must be given."""
        arr, enq, qt, qi = self._arr, self._enq, self._qt, self._qi
        base = self._base
        i, n = self._next - base, len(arr)
        qh = 0
        free = self._free_s
        size, limit, delay, pre = self._batch, self._limit, self._delay_s, self._pre_s
        timeout_less_pre = self._timeout_s - pre
        m0, m1 = self._m0_s * self._slow, self._m1_s * self._slow
        wait_s = self._wait_s
        per_image_s = (m0 + m1 * size) / size
        # What the wait may be: the service's budget (at least two full batches) less the request's own forward.
        budget_s = max(wait_s, 2 * size * per_image_s) - size * per_image_s
        busy = 0.0
        ends: list[int] = []
        starts: list[float] = []
        tooks: list[float] = []
        expired: list[int] = []
        rejected: list[tuple[int, int]] = []
        inf = math.inf
        while True:
            nq = len(qt)
            if qh == nq:
                if i >= n or arr[i] > until_s:
                    break
                qt.append(enq[i])
                qi.append(base + i)
                i += 1
                nq += 1
            first = qt[qh]
            t0 = free if free > first else first
            # When the batch closes: at once if it is already full, when its last image is queued, or
            # when the delay runs out. Its missing images all get in: the queue holds fewer than a batch.
            kth = qh + size - 1
            if kth < nq:
                e_full = qt[kth]
            else:
                k = i + kth - nq
                e_full = enq[k] if k < n else inf
            close = t0 + delay
            start = t0 if e_full <= t0 else (e_full if e_full <= close else close)
            if start > until_s:
                start = until_s   # not decided yet: only admit what arrives until then
                final = False
            else:
                final = True
            # Admission of everything that arrives by the start: no job leaves the queue meanwhile.
            j = bisect_right(arr, start, i, n)
            if j > i:
                room = limit - (nq - qh)
                if wait_s:
                    # The service admits while forward left + (queued // batch) full batches <= that: up to
                    # `size` x (whole batches the budget holds after the forward left + 1) queued.
                    running_left = free - arr[i] if free > arr[i] else 0.0
                    batches = math.floor((budget_s - running_left) / (size * per_image_s) + 1e-9)
                    room = min(room, size * (batches + 1) - (nq - qh))
                if j - i <= room:
                    qt.extend(enq[i:j])
                    qi.extend(range(base + i, base + j))
                else:
                    room = max(room, 0)
                    qt.extend(enq[i:i + room])
                    qi.extend(range(base + i, base + i + room))
                    rejected.append((base + i + room, base + j))
                i = j
            if not final:
                break
            end = bisect_right(qt, start, qh, min(qh + size, len(qt)))
            late = 0
            while qh + late < end and qt[qh + late] + timeout_less_pre < start:
                late += 1
            live = end - qh - late
            if live:
                took = m0 + m1 * live
                free = start + took
                busy += took
            else:
                took = 0.0
                free = start
            ends.append(end)
            tooks.append(took)
            starts.append(start)
            expired.append(late)
            qh = end
        self._free_s = free
        self._busy_s += busy
        self._next = base + i
        if ends:
            self._answer_batches(qi[:qh], ends, starts, expired, tooks)
        if rejected:
            self._answer_rejected(rejected)
        del qt[:qh], qi[:qh]
        del arr[:i], self._enq[:i]
        self._base = base + i

    def _answer_batches(self, members: list[int], ends: list[int], starts: list[float], expired: list[int],
                        tooks: list[float]) -> None:
        local = np.asarray(members, dtype=np.int64)
        ends_a = np.asarray(ends, dtype=np.int64)
        sizes = np.diff(ends_a, prepend=0)
        late = np.asarray(expired, dtype=np.int64)
        took = np.asarray(tooks)
        start = np.repeat(np.asarray(starts), sizes)
        done = start + np.repeat(took, sizes) + self._post_s
        codes = np.full(len(local), OK, dtype=np.int8)
        if late.any():
            position = np.arange(len(local)) - np.repeat(ends_a - sizes, sizes)
            dropped = position < np.repeat(late, sizes)
            done[dropped] = start[dropped] + self._post_s   # answered 504 when the model thread finds it late
            codes[dropped] = DEADLINE_504
        self._answer(local, done, codes)

    def _answer_rejected(self, ranges: list[tuple[int, int]]) -> None:
        local = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in ranges])
        self._rejected += len(local)
        done = self._times.data[local] + self._post_s
        self._answer(local, done, np.full(len(local), REJECTED_503, dtype=np.int8))

    def _answer(self, local: np.ndarray, done_s: np.ndarray, codes: np.ndarray) -> None:
        latency = done_s - self._times.data[local]
        self.sink.record(self._ids.data[local], codes, latency, self.id)
        self._pending_done.append(done_s)
        self._pending_latency.append(latency)

    # --- sharing the machine ---------------------------------------------------------------------------
    def set_slowdown(self, factor: float) -> None:
        """Every forward formed from now on takes `factor` x model(b); call advance(now) first, so the
        batches that started before now keep the factor they started with."""
        if not factor >= 1.0:
            raise ValueError(f"slowdown factor must be >= 1, not {factor!r}")
        self._slow = float(factor)

    @property
    def slowdown(self) -> float:
        return self._slow

    def busy_s(self, t_s: float) -> float:
        """Seconds the model thread spent in forwards by t_s (after advance(t_s))."""
        return self._busy_s - max(self._free_s - t_s, 0.0)

    # --- what is left -----------------------------------------------------------------------------------
    def drain(self) -> float:
        """Finish everything admitted (no more arrivals come); the time the last answer leaves."""
        self.advance(math.inf)
        if self._pending_done:
            return max(float(d.max()) for d in self._pending_done if len(d))
        return self._free_s

    def outstanding(self, t_s: float) -> int:
        """Requests here without an answer by t_s (after advance(t_s)): queued, preprocessing or in a forward."""
        answered = self._requests + sum(int(np.count_nonzero(d <= t_s)) for d in self._pending_done)
        return self.arrived - answered

    # --- metrics ----------------------------------------------------------------------------------------
    def sample(self, t_s: float) -> TargetSample:
        """The counters at t_s; call advance(t_s) first."""
        if self._pending_done:
            done = np.concatenate(self._pending_done)
            latency = np.concatenate(self._pending_latency)
            now = done <= t_s
            if now.all():
                self._pending_done, self._pending_latency = [], []
            else:
                self._pending_done, self._pending_latency = [done[~now]], [latency[~now]]
                latency = latency[now]
            if len(latency):
                self._requests += len(latency)
                self._latency_sum_s += float(latency.sum())
                self._hist += np.bincount(np.searchsorted(_BUCKETS, latency, side="left"), minlength=len(self._hist))
        return TargetSample(
            requests_total=float(self._requests),
            latency_bucket_counts=tuple(float(c) for c in np.cumsum(self._hist)),
            latency_sum_s=self._latency_sum_s,
            latency_count=float(self._requests),
            inflight=float(self.arrived - self._requests),
            queue_depth=float(len(self._qt)),
            cpu_seconds_total=self.busy_s(t_s) + self._rejected * self._post_s,
            workers=1.0)
