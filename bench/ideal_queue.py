"""The latency an ideal server would give: one shared FIFO queue, `servers` model workers taking every
waiting request (up to a full batch) the moment they are free, no HTTP, no decode contention, no batching
delay. The benchmark feeds it the batch times it measured and the arrivals it sent, and compares the
service's tail with this bound: what is left between them is the serving path's own cost.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Callable, Sequence

import numpy as np


def linear_batch_time(one_s: float, full_s: float, full_batch: int) -> Callable[[int], float]:
    """Batch time for b images, interpolated between the measured times of 1 and `full_batch` images."""
    per_image_s = (full_s - one_s) / max(1, full_batch - 1)
    return lambda b: one_s + per_image_s * (b - 1)


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
