"""The shape a trace is replayed at: its own per-second rates, or a coarser one (`--coarse-s`), and whether
scaling it up amplifies the log's counting noise into bursts a real service would not see.

A log of counted requests (whole numbers a second) carries Poisson counting noise: a stretch that counts N
requests on average varies by sqrt(N), 1/sqrt(N) of itself. Scaling by S multiplies the noise with the
rate, so the relative noise stays 1/sqrt(N), where a real service at S times the rate sees 1/sqrt(N x S);
the replay's own Poisson draws add only S x N to the scaled trace's variance of S^2 x N. What the goals
judge is a 10 s window of replay: it rests on the counts of 10 x speedup seconds of the log. A coarse
replay averages the log over windows of W of its seconds and lets the replayer draw its Poisson arrivals
from that smooth shape (loadtester/schedule.py, as for any trace): a window's rate then rests on at least
W seconds' counts.

Pure functions: no I/O; the caller prints the warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sim.results import WINDOW_S

# Fewer counts than this behind a 10 s window of replay and its counting noise is over 1/sqrt(500) = 4.5%
# of its rate; the worst 1% of windows (what the 99% goal leaves out) are 2.33 of those out, over 10%: the
# margin between a replica's within-SLO capacity and its saturation in the built-in profile (54 vs 60
# req/s), reached from the log's noise alone.
NOISY_WINDOW_COUNTS = 500.0
# Scaled this much or more, the log's noise is >= sqrt(10) = 3.2x what a real service at the scaled
# rate sees, and >= 10/11 of the scaled trace's variance.
NOISY_SCALE = 10.0
SUGGESTED_STEP_S = 60   # the coarse windows the warning suggests: whole minutes of the log


def coarse_rates(rates_rps: Sequence[float], window_s: int) -> np.ndarray:
    """Every second's rate replaced by the mean of its window of `window_s` seconds (the last window, if
    shorter, by its own mean): the total and every window's mean are the trace's."""
    rates = np.asarray(rates_rps, dtype=np.float64)
    if window_s < 1:
        raise ValueError(f"window_s must be >= 1, not {window_s}")
    starts = np.arange(0, len(rates), int(window_s))
    lengths = np.diff(np.append(starts, len(rates)))
    return np.repeat(np.add.reduceat(rates, starts) / lengths, lengths)


def replay_rates(rates_rps: Sequence[float], coarse_s: int | None) -> Sequence[float]:
    """The rates the replay draws from: the trace's own, or their `coarse_s` means."""
    return rates_rps if coarse_s is None else coarse_rates(rates_rps, coarse_s)


@dataclass(frozen=True)
class CountingNoise:
    """A scaled replay whose SLO windows rest on few counted requests."""

    mean_count_per_s: float    # the log's mean count per second
    window_counts: float       # counted requests behind a 10 s window of replay (with speedup, coarse)
    scale: float
    suggested_coarse_s: int    # a --coarse-s that puts NOISY_WINDOW_COUNTS or more behind a window

    @property
    def relative_noise(self) -> float:
        """The counting noise of a 10 s window, as a share of its rate (scaling keeps it)."""
        return 1.0 / math.sqrt(self.window_counts)

    @property
    def real_noise(self) -> float:
        """What a real service at the scaled rate would see instead."""
        return 1.0 / math.sqrt(self.window_counts * self.scale)

    def as_dict(self) -> dict:
        return {"mean_count_per_s": round(self.mean_count_per_s, 4), "window_counts": round(self.window_counts, 1),
                "scale": self.scale, "relative_noise": round(self.relative_noise, 4),
                "real_noise": round(self.real_noise, 4), "suggested_coarse_s": self.suggested_coarse_s}


def counting_noise(rates_rps: Sequence[float], scale: float, speedup: float = 1.0, coarse_s: int | None = None,
                   window_s: float = WINDOW_S) -> CountingNoise | None:
    """The amplified counting noise of replaying a log of counts scaled by `scale`, or None where there is
    none to fear: a trace with a fractional rate is a designed shape, not counts; scaled less than
    NOISY_SCALE, or with NOISY_WINDOW_COUNTS or more behind a window, the noise is a real service's."""
    rates = np.asarray(rates_rps, dtype=np.float64)
    mean = float(rates.mean())
    if scale < NOISY_SCALE or mean <= 0 or not np.all(rates == np.floor(rates)):
        return None
    counts = mean * max(1.0, window_s * float(speedup), float(coarse_s or 1))
    if counts >= NOISY_WINDOW_COUNTS:
        return None
    suggested = SUGGESTED_STEP_S * max(1, math.ceil(NOISY_WINDOW_COUNTS / (mean * SUGGESTED_STEP_S)))
    return CountingNoise(mean_count_per_s=mean, window_counts=counts, scale=scale, suggested_coarse_s=suggested)


def noise_warning(trace: str, noise: CountingNoise) -> str:
    """One line that names the trace, its mean count a second, the scale and the coarse replay to use."""
    return (f"{trace} is a log of {noise.mean_count_per_s:.3g} requests a second on average, scaled "
            f"x{noise.scale:.3g}: a {WINDOW_S:g} s window of its replay rests on {noise.window_counts:.0f} counted "
            f"requests, so the log's counting noise ({noise.relative_noise:.1%} of the rate; a real service at "
            f"that rate sees {noise.real_noise:.1%}) is scaled into bursts; --coarse-s {noise.suggested_coarse_s} "
            f"replays the log's {noise.suggested_coarse_s} s means with Poisson arrivals instead")
