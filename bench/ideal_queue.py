"""The latency an ideal server would give: one shared FIFO queue, `servers` model workers taking every
waiting request (up to a full batch) the moment they are free, no HTTP, no decode contention, no batching
delay. The benchmark feeds it the batch times it measured and the arrivals it sent, and compares the
service's tail with this bound: what is left between them is the serving path's own cost.

`served_slowdown` splits that cost in two: how much slower the service's own batches ran than the measured
batch times (the cores shared with decoding, the HTTP path and the load generator), and, with the ideal
queue fed batch times that much longer, what is left beyond it (separate queues per worker, hand-offs).
"""

from __future__ import annotations

import bisect
import collections
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


def served_slowdown(model_s: Sequence[float], preprocess_s: Sequence[float],
                    batch_time_s: Callable[[int], float]) -> float:
    """How many times `batch_time_s` the service's batches took, from its answers' Server-Timing.

    Every image of one batch reports the same forward time (`model`), so answers are grouped into batches
    by it; a batch's cost is its forward plus its images' decoding (`preprocess`), the two parts that
    `batch_time_s`, measured with decoding and forward one after the other in one process, covers.
    """
    batches: dict[float, list[float]] = collections.defaultdict(list)
    for model, preprocess in zip(model_s, preprocess_s):
        batches[model].append(preprocess)
    if not batches:
        return float("nan")
    served = sum(model + sum(decodes) for model, decodes in batches.items())
    return served / sum(batch_time_s(len(decodes)) for decodes in batches.values())


def scaled(batch_time_s: Callable[[int], float], factor: float) -> Callable[[int], float]:
    return lambda b: factor * batch_time_s(b)
