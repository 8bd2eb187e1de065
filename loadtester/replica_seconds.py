"""What a run's replicas cost: replica-seconds, the integral of a replica series over the replay.

The one definition: the load tester's summary (from the workers series it read from Prometheus), the
comparison of runs (comparison/), the simulator's ready timeline and its calibration all integrate through
`integrate_steps`, so a run's cost is the same number wherever it is shown. Pure: points in, numbers out.
"""

from __future__ import annotations

import math
from typing import Sequence

# The series whose integral is the cost: the inference workers serving traffic (loadtester/prometheus.py).
COST_SERIES = "workers"


def integrate_steps(points: Sequence[Sequence[float]], start_s: float, end_s: float) -> float:
    """Integral of a step function given as [t, value] points (each value holds until the next point)."""
    # Sorted by time only, and stably: of two points at one time the later-recorded value holds.
    points = sorted((p for p in points if math.isfinite(p[1])), key=lambda p: p[0])
    if not points or end_s <= start_s:
        return 0.0
    total = 0.0
    for (t, value), nxt in zip(points, [*points[1:], (end_s, 0.0)]):
        lo, hi = max(t, start_s), min(nxt[0], end_s)
        if hi > lo:
            total += value * (hi - lo)
    # Before the first sample, the first value held (a run starts with its initial workers).
    if points[0][0] > start_s:
        total += points[0][1] * (min(points[0][0], end_s) - start_s)
    return total


def replica_cost(series: dict, duration_s: float) -> dict | None:
    """{replica_seconds, mean_replicas, series} of a replay `duration_s` long, from its COST_SERIES (t in
    seconds since the start of the replay); None without that series."""
    points = series.get(COST_SERIES)
    if not points:
        return None
    total = integrate_steps(points, 0.0, duration_s)
    return {"replica_seconds": round(total, 1),
            "mean_replicas": round(total / duration_s, 3) if duration_s > 0 else None, "series": COST_SERIES}
