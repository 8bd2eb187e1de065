"""The latency an ideal server would give: one shared FIFO queue, `servers` model workers taking every
waiting request (up to a full batch) the moment they are free, no HTTP, no decode contention, no batching
delay. The benchmark feeds it the batch times it measured and the arrivals it sent, and compares the
service's tail with this bound: what is left between them is the serving path's own cost.

`served_slowdown` splits that cost in two: how much slower the service's own batches ran than the measured
batch times (the cores shared with decoding, the HTTP path and the load generator), and, with the ideal
queue fed batch times that much longer, what is left beyond it (separate queues per worker, hand-offs).

A batch time is sim/batch_time.py's line (`BatchTime.through` the measured times of one image and of a
full batch); answers are grouped back into batches by sim/batch_regroup.py.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Callable, Sequence

import numpy as np

from sim.batch_regroup import regroup_batches


def ideal_latencies_s(arrivals_s: Sequence[float], servers: int, max_batch: int,
                      batch_time_s: Callable[[int], float]) -> np.ndarray:
    """Each request's time from arrival to answer in the ideal shared batching queue."""
    arrivals = list(arrivals_s)
    latencies = np.empty(len(arrivals))
    free_at = [0.0] * servers
    i = 0
    while i < len(arrivals):
        start = max(heapq.heappop(free_at), arrivals[i])
        j = bisect.bisect_right(arrivals, start, i, min(len(arrivals), i + max_batch))
        end = start + batch_time_s(j - i)
        latencies[i:j] = end - np.asarray(arrivals[i:j])
        heapq.heappush(free_at, end)
        i = j
    return latencies


def served_slowdown(model_s: Sequence[float], preprocess_s: Sequence[float],
                    batch_time_s: Callable[[int], float]) -> float:
    """How many times `batch_time_s` the service's batches took, from its answers' Server-Timing.

    A batch's cost is its forward plus its images' decoding (`preprocess`), the two parts that
    `batch_time_s`, measured with decoding and forward one after the other in one process, covers.
    """
    if len(model_s) == 0:
        return float("nan")
    batches = regroup_batches(model_s)
    served = float(np.sum(batches.forward + batches.total(preprocess_s)))
    return served / sum(batch_time_s(int(images)) for images in batches.sizes)
