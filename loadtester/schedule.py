"""When each request is due: a pure function of the trace's rates, the seed and the replay options.

Computing the whole schedule before the run keeps the sender open-loop (it never asks what happened
to earlier requests) and makes two runs with the same inputs send at the same offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Schedule:
    offsets_s: np.ndarray      # float64, sorted: wall-clock seconds after the start of the replay
    trace_second: np.ndarray   # int32: the trace line (second) each request comes from
    duration_s: float          # wall-clock length of the replay

    def __len__(self) -> int:
        return len(self.offsets_s)


def build_schedule(rates_rps: Sequence[float], *, seed: int = 0, arrivals: str = "poisson", scale: float = 1.0,
                   speedup: float = 1.0, duration_s: float | None = None) -> Schedule:
    """Arrival offsets for a trace.

    uniform: the count in second k is the whole part of the running total of rate*scale (so a
    fractional rate carries over: 0.5 gives one request every other second, exactly), evenly spaced.
    poisson: a Poisson process whose rate is rate*scale during second k (count ~ Poisson, times
    uniform within the second), drawn from numpy's generator seeded with `seed`.
    speedup divides every offset (and so multiplies every rate); duration_s cuts the replay.
    """
    rates = np.asarray(rates_rps, dtype=np.float64) * float(scale)
    if arrivals == "uniform":
        totals = np.floor(np.cumsum(rates) + 1e-9)
        counts = np.diff(np.concatenate(([0.0], totals))).astype(np.int64)
        seconds = np.repeat(np.arange(len(rates), dtype=np.int64), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        rank = np.arange(len(seconds)) - starts
        offsets = seconds + rank / np.repeat(np.maximum(counts, 1), counts)
    elif arrivals == "poisson":
        rng = np.random.default_rng(seed)
        counts = rng.poisson(rates)
        seconds = np.repeat(np.arange(len(rates), dtype=np.int64), counts)
        offsets = np.sort(seconds + rng.random(len(seconds)))
    else:
        raise ValueError(f"arrivals must be 'poisson' or 'uniform', not {arrivals!r}")
    offsets = offsets / float(speedup)
    length_s = len(rates) / float(speedup)
    if duration_s is not None and duration_s < length_s:
        keep = offsets < duration_s
        offsets, seconds = offsets[keep], seconds[keep]
        length_s = float(duration_s)
    return Schedule(offsets_s=offsets.astype(np.float64), trace_second=seconds.astype(np.int32),
                    duration_s=float(length_s))
