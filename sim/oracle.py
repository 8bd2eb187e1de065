"""The oracle: a policy that knows the whole future of the trace, the cost lower bound of a comparison.

Per second s it asks for the fewest replicas that keep the SLO with the start-up delay taken into account:

    demand[s]  = the arrivals in second s (from the schedule itself: the oracle knows every arrival, not
                 only the trace's rate; `smooth_s` > 1 averages that many seconds centred on s)
    need[s]    = ceil(demand[s] / the profile's within-SLO capacity per replica), within min..max
    desired[t] = max(need[t .. t + startup])

so a replica is asked for `startup` seconds (a start-up that 99% of pods beat) before the second that
needs it, and released only when no second within one start-up needs it again (releasing and re-adding
it would not be ready in time). It scales the simulated cluster directly, once per second; it does not go
through the autoscaler, Prometheus or any measurement.
"""

from __future__ import annotations

import math

import numpy as np


def need_per_second(arrivals_per_s: np.ndarray, capacity_rps: float, min_replicas: int, max_replicas: int,
                    smooth_s: int = 1) -> np.ndarray:
    """Replicas each second needs to serve its arrivals within the SLO."""
    counts = np.asarray(arrivals_per_s, dtype=np.float64)
    if smooth_s > 1 and len(counts):
        kernel = np.ones(smooth_s) / smooth_s
        demand = np.convolve(np.pad(counts, (smooth_s // 2, smooth_s - 1 - smooth_s // 2), mode="edge"), kernel,
                             mode="valid")
    else:
        demand = counts
    return replicas_for(demand, capacity_rps, min_replicas, max_replicas)


def replicas_for(rate_rps: np.ndarray, capacity_rps: float, min_replicas: int, max_replicas: int) -> np.ndarray:
    """The fewest replicas that serve each rate at `capacity_rps` each, within min..max."""
    return np.clip(np.ceil(rate_rps / capacity_rps - 1e-9).astype(np.int64), min_replicas, max_replicas)


def window_max(values: np.ndarray, before: int, after: int, pad_before: int, pad_after: int) -> np.ndarray:
    """out[t] = max(values[t - before .. t + after]), seconds outside the trace counted as the pad values."""
    if before == after == 0:
        return values
    padded = np.concatenate([np.full(before, pad_before), values, np.full(after, pad_after)]).astype(values.dtype)
    return np.lib.stride_tricks.sliding_window_view(padded, before + after + 1).max(axis=1)


def plan(arrivals_per_s: np.ndarray, capacity_rps: float, startup_s: float, min_replicas: int, max_replicas: int,
         smooth_s: int = 1) -> np.ndarray:
    """desired[t]: the replicas the oracle asks for during second t."""
    need = need_per_second(arrivals_per_s, capacity_rps, min_replicas, max_replicas, smooth_s)
    # The maximum over [t, t + lead], the end padded with the last need (the trace ends, nothing comes).
    return window_max(need, 0, max(0, math.ceil(startup_s)), min_replicas,
                      need[-1] if len(need) else min_replicas)


def lagged_plan(arrivals_per_s: np.ndarray, capacity_rps: float, headroom: float, lag_s: float, mean_s: float,
                hold_s: float, min_replicas: int, max_replicas: int) -> np.ndarray:
    """A reactive planner with perfect measurements: what the best autoscaler that learns of traffic only
    after it arrived could do. During second t it asks for

        ceil(headroom x the mean arrivals of seconds t - lag_s - mean_s + 1 .. t - lag_s / capacity_rps)

    (with lag_s = 0 that includes second t itself: its arrivals known as they come), held for hold_s (the
    highest of that over [t - hold_s, t]), within min..max. It counts every arrival exactly (no scrape, no
    windowed rate, no capacity to learn), yet it cannot know a surge before lag_s after it began and a
    replica it asks for still takes its start-up: the gap between it and the oracle is what knowing the
    future is worth, and no policy that reacts to measurements closes it. Before lag_s + mean_s seconds it
    plans for the trace's first mean_s seconds, as a deployment already serving them.
    """
    counts = np.asarray(arrivals_per_s, dtype=np.float64)
    n = len(counts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    span = min(max(1, int(round(mean_s))), n)
    lag, hold = max(0, math.ceil(lag_s - 1e-9)), max(0, math.ceil(hold_s - 1e-9))
    total = np.concatenate([[0.0], np.cumsum(counts)])
    end = np.maximum(np.arange(n) - lag + 1, span)   # the seen span of second t: [end - span, end)
    seen = (total[end] - total[end - span]) / span
    need = replicas_for(headroom * seen, capacity_rps, min_replicas, max_replicas)
    return window_max(need, hold, 0, need[0], need[-1])
