"""What one scrape of a simulated replica holds: its /metrics as the service exports them (inference/metrics.py),
and the row the emulator (sim/prometheus.py) stores them in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from inference.metrics import LATENCY_BUCKETS_S

# Bucket upper bounds as Prometheus parses the `le` labels, +Inf last.
LE_BOUNDS_S = tuple(float(b) for b in LATENCY_BUCKETS_S) + (math.inf,)
P95_QUANTILE = 0.95  # the φ of DEFAULT_QUERY_P95_S

# One target's values at one scrape, as a row: the counters first (rate() works on those columns at once).
REQUESTS_COL, CPU_COL = 0, 1
BUCKET_COLS = slice(2, 2 + len(LE_BOUNDS_S))
COUNTER_COLUMNS = 2 + len(LE_BOUNDS_S)
INFLIGHT_COL, QUEUE_COL = COUNTER_COLUMNS, COUNTER_COLUMNS + 1


@dataclass(frozen=True)
class TargetSample:
    """One replica's /metrics at one scrape. Counters are cumulative since the replica started."""

    requests_total: float                   # answered inference requests
    latency_bucket_counts: Sequence[float]  # cumulative, one per LATENCY_BUCKETS_S bound (le) then +Inf
    latency_sum_s: float
    latency_count: float
    inflight: float                         # gauge: requests being handled
    queue_depth: float                      # gauge: images waiting for the model
    cpu_seconds_total: float
    workers: float = 1.0                    # gauge: 1 while the worker is live

    def __post_init__(self) -> None:
        if len(self.latency_bucket_counts) != len(LE_BOUNDS_S):
            raise ValueError(f"latency_bucket_counts has {len(self.latency_bucket_counts)} values; one per "
                             f"bound of LATENCY_BUCKETS_S plus +Inf is {len(LE_BOUNDS_S)}")

    def row(self) -> np.ndarray:
        return np.array([self.requests_total, self.cpu_seconds_total, *self.latency_bucket_counts,
                         self.inflight, self.queue_depth], dtype=float)


def le_counts(latencies_s: Iterable[float]) -> tuple[float, ...]:
    """Observations <= each bound of LE_BOUNDS_S: what these latencies add to a histogram's buckets."""
    # prometheus_client counts an observation in the first bucket whose bound is >= it (le semantics).
    first_bucket = np.searchsorted(LE_BOUNDS_S, np.fromiter(latencies_s, dtype=float), side="left")
    per_bucket = np.bincount(first_bucket, minlength=len(LE_BOUNDS_S))
    return tuple(float(c) for c in np.cumsum(per_bucket))
