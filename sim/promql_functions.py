"""Prometheus 2.42's query functions, ported from its v2.42.0 source (files and functions are cited where they
are ported), for the simulator's emulator (sim/prometheus.py): rate()'s extrapolation, avg_over_time()'s
compensated mean, histogram_quantile()'s bucket interpolation. Pure functions of the samples.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np

def extrapolated_rate(times_ms: Sequence[int], values: np.ndarray, range_end_ms: int,
                      range_ms: int) -> np.ndarray | None:
    """rate() of counters sampled at the same `times_ms` (rows) in the range ending at `range_end_ms`.

    Port of promql/functions.go extrapolatedRate (isCounter=true, isRate=true), one column per series.
    None where Prometheus drops the series: fewer than two samples.
    """
    if len(times_ms) < 2:
        return None
    values = np.asarray(values, dtype=float)
    first, last = values[0], values[-1]
    result = last - first
    if (values[1:] < values[:-1]).any():
        # A drop is a counter reset: the counter restarted from 0, so all it had counted before counts
        # too. Added one reset at a time, in Go's order, so the sums round the same.
        for prev, cur in zip(values[:-1], values[1:]):
            result = result + np.where(cur < prev, prev, 0.0)
    duration_to_start_s = (times_ms[0] - (range_end_ms - range_ms)) / 1000
    duration_to_end_s = (range_end_ms - times_ms[-1]) / 1000
    sampled_s = (times_ms[-1] - times_ms[0]) / 1000
    average_interval_s = sampled_s / (len(times_ms) - 1)
    # A counter is never negative: do not extrapolate back past the time it would have been 0. In 2.42
    # this clamp comes before the threshold below (later versions swapped the two).
    with np.errstate(divide="ignore", invalid="ignore"):
        duration_to_zero_s = sampled_s * (first / result)
    clamp = (result > 0) & (first >= 0) & (duration_to_zero_s < duration_to_start_s)
    to_start_s = np.where(clamp, duration_to_zero_s, duration_to_start_s)
    # Extrapolate to a window edge only if a sample could be expected there (within 1.1 average
    # intervals); otherwise the series started or ended inside the window: add half an interval.
    threshold_s = average_interval_s * 1.1
    interval_s = sampled_s + np.where(to_start_s < threshold_s, to_start_s, average_interval_s / 2)
    interval_s = interval_s + (duration_to_end_s if duration_to_end_s < threshold_s else average_interval_s / 2)
    factor = interval_s / sampled_s / (range_ms / 1000)
    return result * factor


def avg_over_time(values: Iterable[float]) -> float:
    """Port of promql/functions.go funcAvgOverTime: a running mean with Kahan (Neumaier) compensation."""
    mean = compensation = count = 0.0
    for v in values:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue  # Inf - Inf would give NaN; the mean is already right
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean, compensation = _kahan_sum_inc(v / count - mean / count, mean, compensation)
    return mean if math.isinf(mean) else mean + compensation


def _kahan_sum_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """promql/functions.go kahanSumInc."""
    t = total + inc
    if abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """histogram_quantile(q) of classic buckets given as (upper bound, cumulative count) pairs.

    Port of promql/quantile.go bucketQuantile with coalesceBuckets and ensureMonotonic.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or ordered[-1][0] != math.inf:
        return math.nan
    bounds, counts = _ensure_monotonic(*_coalesce(ordered))
    if len(bounds) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = _go_sort_search(len(bounds) - 1, lambda i: counts[i] >= rank)
    if b == len(bounds) - 1:
        # In the +Inf bucket: nothing to interpolate towards, so the highest finite bound it is.
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    # The lowest bucket interpolates from 0, the others from the bound below them.
    bucket_start, bucket_end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        bucket_start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def _coalesce(ordered: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """promql/quantile.go coalesceBuckets: buckets with the same bound (e.g. le="1" and "1.0") add up."""
    bounds, counts = [ordered[0][0]], [ordered[0][1]]
    for bound, count in ordered[1:]:
        if bound == bounds[-1]:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    return bounds, counts


def _ensure_monotonic(bounds: list[float], counts: list[float]) -> tuple[list[float], list[float]]:
    """promql/quantile.go ensureMonotonic: the envelope, so the binary search below sees sorted counts."""
    top = counts[0]
    for i in range(1, len(counts)):
        if counts[i] > top:
            top = counts[i]
        elif counts[i] < top:
            counts[i] = top
    return bounds, counts


def _go_sort_search(n: int, pred: Callable[[int], bool]) -> int:
    """Go's sort.Search: the smallest i in [0, n) with pred(i), else n (NaN ranks behave as in Go)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


# --- storage ----------------------------------------------------------------------------------------
