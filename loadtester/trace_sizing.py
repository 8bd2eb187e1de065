"""How big a trace is replayed: its peak, and the scale that puts that peak where a cluster is sized.

The one definition for the simulator (`python -m sim --peak-replicas N`), the matrix of simulations and the
load tester (`--peak-replicas N --capacity-rps R`, `--peak-rps R`), so a trace scaled for N replicas offers
the same load to a simulated cluster and to a real one. The local stack's planning (planning/sizing.py)
keeps its peak at the same margin. It lives with the load tester, the lowest layer that needs it: planning/
and sim/ import the load tester, never the other way round. Pure: rates in, numbers out.

- the peak is the highest mean rate over PEAK_WINDOW_S of replay time: one noisy second is no peak;
- N replicas carry a peak of (N - PEAK_MARGIN) x one replica's within-SLO capacity: the peak needs all N,
  with half a replica of headroom for the noise around the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

PEAK_WINDOW_S = 60.0
# The peak of a run sized for N replicas is (N - PEAK_MARGIN) replicas' capacity.
PEAK_MARGIN = 0.5


def peak_rate_rps(rates_rps: Sequence[float], speedup: float = 1.0, window_s: float = PEAK_WINDOW_S) -> float:
    """The highest mean rate over `window_s` of replay time (one noisy second is no peak)."""
    rates = np.asarray(rates_rps, dtype=np.float64) * speedup
    width = max(1, min(len(rates), int(round(window_s * speedup))))
    sums = np.convolve(rates, np.ones(width), mode="valid")
    return float(sums.max() / width)


def scale_for_peak_replicas(peak_rps: float, replicas: int, capacity_rps: float) -> float:
    """--peak-replicas N: the scale that puts the peak at (N - PEAK_MARGIN) x the within-SLO capacity."""
    return round((replicas - PEAK_MARGIN) * capacity_rps / peak_rps, 6)


def scale_for_peak_rps(peak_rps: float, target_rps: float) -> float:
    """--peak-rps R: the scale that puts the peak at R req/s."""
    return round(target_rps / peak_rps, 6)


def replicas_for_peak(peak_rps: float, capacity_rps: float) -> int:
    """The replicas a peak needs, as --peak-replicas counts them (the inverse of scale_for_peak_replicas)."""
    return max(1, math.ceil(peak_rps / capacity_rps + PEAK_MARGIN - 1e-9))


@dataclass(frozen=True)
class TraceScale:
    """The scale a replay multiplies the trace's rates by, and where that puts the trace's peak."""

    scale: float
    peak_rps: float          # the trace's peak after --speedup, before the scale
    how: str                 # what chose the scale, for the console and summary.json

    @property
    def scaled_peak_rps(self) -> float:
        return self.peak_rps * self.scale

    def as_dict(self) -> dict:
        return {"scale": self.scale, "peak_rps": round(self.peak_rps, 4), "peak_window_s": PEAK_WINDOW_S,
                "scaled_peak_rps": round(self.scaled_peak_rps, 4), "how": self.how}


def choose_scale(rates_rps: Sequence[float], speedup: float = 1.0, *, scale: float | None = None,
                 peak_replicas: int | None = None, capacity_rps: float | None = None,
                 peak_rps: float | None = None) -> TraceScale:
    """The scale of a replay: `scale` as given, else the one that puts the peak at `peak_rps` or where
    `peak_replicas` replicas of `capacity_rps` carry it, else 1. The caller checks that at most one is given."""
    peak = peak_rate_rps(rates_rps, speedup)
    if peak_replicas is not None and capacity_rps is not None:
        return TraceScale(scale_for_peak_replicas(peak, peak_replicas, capacity_rps), peak,
                          f"--peak-replicas {peak_replicas} at {capacity_rps:g} req/s each: the peak at "
                          f"({peak_replicas} - {PEAK_MARGIN:g}) x {capacity_rps:g} req/s")
    if peak_rps is not None:
        return TraceScale(scale_for_peak_rps(peak, peak_rps), peak, f"--peak-rps {peak_rps:g}")
    return TraceScale(1.0 if scale is None else scale, peak, "--scale" if scale is not None else "the default")
