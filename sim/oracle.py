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
    need = np.ceil(demand / capacity_rps - 1e-9).astype(np.int64)
    return np.clip(need, min_replicas, max_replicas)


def plan(arrivals_per_s: np.ndarray, capacity_rps: float, startup_s: float, min_replicas: int, max_replicas: int,
         smooth_s: int = 1) -> np.ndarray:
    """desired[t]: the replicas the oracle asks for during second t."""
    need = need_per_second(arrivals_per_s, capacity_rps, min_replicas, max_replicas, smooth_s)
    lead = max(0, math.ceil(startup_s))
    # Sliding maximum over [t, t + lead]: pad the end with the last need (the trace ends, nothing comes).
    padded = np.concatenate([need, np.full(lead, need[-1] if len(need) else min_replicas)])
    if lead == 0:
        return need
    windows = np.lib.stride_tricks.sliding_window_view(padded, lead + 1)
    return windows.max(axis=1)[:len(need)]
