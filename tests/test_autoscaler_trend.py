"""The slo policy's forecast from the recent rates' line (FORECAST_RECENT_HORIZON_S): when it counts, what
it projects, and that it meets a ramp seen through a 30 s rate window sooner than the windowed trend alone.
Pure functions: no clock, no HTTP."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.config import Config
from autoscaler.policy import Metrics, Observation, State, decide
from autoscaler.scaling import ScalerStatus
from autoscaler.slo_signals import Sample, recent_line_rate

NOW_S = 100.0
POLLS_S = [86.0 + 2 * i for i in range(8)]   # the polls within FORECAST_CONFIRM_S (15 s) of NOW_S, 2 s apart


def config(**overrides) -> Config:
    base = dict(policy="slo", scaler="dry-run", forecast_confirm_s=15, forecast_recent_horizon_s=5, tolerance=0.1)
    base.update(overrides)
    return Config(**base).validate()


def polls(recent: list[float]) -> tuple[Sample, ...]:
    """2 s poll intervals ending at POLLS_S with these recent rates (the windowed rate does not count here)."""
    return tuple(Sample(t, 50.0, None, r, 2.0) for t, r in zip(POLLS_S[-len(recent):], recent))


MIDS_S = [t - 1.0 for t in POLLS_S]           # each recent rate stands at its interval's middle


def line(level_at_now: float, slope: float) -> list[float]:
    return [level_at_now + slope * (t - NOW_S) for t in MIDS_S]


def noisy(amplitude: float) -> list[float]:
    """A rise of 2 req/s per s with +-amplitude alternating on it."""
    return [v + (amplitude if i % 2 else -amplitude) for i, v in enumerate(line(102.0, 2.0))]


LINE_CASES = {
    # id: (recent rates (or the samples themselves), config overrides, expected rate ahead or None)
    "a-clear-rise-is-projected-from-now": (line(100.0, 10.0), {}, 100.0 + 10.0 * 5),
    "the-horizon-is-the-setting": (line(100.0, 10.0), {"forecast_recent_horizon_s": 2}, 100.0 + 10.0 * 2),
    # 0.5 req/s per s over 15 s is 7.5 req/s, within 10% of ~96 req/s: the tolerance band's noise
    "a-rise-within-the-tolerance-is-not": (line(100.0, 0.5), {}, None),
    # the same rise under noise of +-17.5 req/s: a slope of 2.83 +- 1.52, 1.86 standard errors
    "a-rise-under-two-standard-errors-is-not": (noisy(17.5), {}, None),
    # under +-14.5: 2.69 +- 1.26, 2.13 standard errors; where numpy's least squares puts the line 5 s ahead
    "a-rise-over-two-standard-errors-is": (noisy(14.5), {}, np.polyval(np.polyfit(MIDS_S, noisy(14.5), 1), 105.0)),
    "a-fall-is-not": (line(100.0, -10.0), {}, None),
    "flat-is-not": ([100.0] * 8, {}, None),
    "two-polls-are-too-few": (line(100.0, 10.0)[-2:], {}, None),
    "off-with-a-zero-horizon": (line(100.0, 10.0), {"forecast_recent_horizon_s": 0}, None),
    "off-with-a-zero-window": (line(100.0, 10.0), {"forecast_confirm_s": 0}, None),
    # the first poll after an idle spell spans the whole 30 s rate window: centred at 73 s, before the window
    "an-interval-centred-before-the-window-is-left-out": (
        (Sample(88.0, 10.0, None, 10.0, 30.0),) + polls([100.0] * 6), {}, None),
    # a step from 50 to 100 inside the window reads as a rise until it has left the window (slope 4.46)
    "a-step-within-the-window-reads-as-a-rise": ([50.0] * 3 + [100.0] * 5, {}, 81.25 + 4.4643 * (105.0 - 92.0)),
}


@pytest.mark.parametrize("recent,overrides,expected", LINE_CASES.values(), ids=LINE_CASES.keys())
def test_the_recent_rates_line_counts_only_when_it_rises_clearly(recent, overrides, expected):
    samples = recent if isinstance(recent, tuple) else polls(recent)
    got = recent_line_rate(samples, NOW_S, config(**overrides))
    assert got == (pytest.approx(expected, rel=1e-4) if expected is not None else None)


def windowed(rate_at, t_s: float, window_s: float = 30.0) -> float:
    """What rate() over window_s shows at t_s for the true rate rate_at (a mean over 0.1 s steps)."""
    steps = int(window_s * 10)
    return sum(rate_at(t_s - (i + 0.5) / 10) for i in range(steps)) / steps


def ramp(t_s: float) -> float:
    return 10.0 if t_s < 60.0 else 10.0 + 3.0 * (t_s - 60.0)


def replicas_during_a_ramp(horizon_s: float, until_s: float) -> int:
    """Poll every 2 s through a 30 s window while the rate rises from 10 req/s by 3 req/s each second from
    60 s on (10 req/s per replica at a 0.7 target); replicas ready at once. The count asked for at until_s."""
    cfg = Config(policy="slo", scaler="dry-run", min_replicas=1, max_replicas=50, capacity_rps_per_replica=10,
                 target_inflight_per_replica=0, target_utilization=0.7, capacity_learning=False, rate_window_s=30,
                 forecast_recent_horizon_s=horizon_s, scale_up_max_ratio=1000).validate()
    state, current, t = State(), 2, 0.0
    while t <= until_s:
        rate = windowed(ramp, t)
        obs = Observation(ScalerStatus(current, current, current), Metrics(rate_rps=rate, p95_ms=100.0))
        decision = decide(obs, state, cfg, t)
        state, current = decision.state, decision.replicas
        t += 2.0
    return current


RAMP_CASES = {
    # id: (FORECAST_RECENT_HORIZON_S, whether the count at 76 s covers the rate at 76 s: 58 req/s, 9 replicas)
    "with-the-recent-line": (5.0, True),
    "the-windowed-trend-alone": (0.0, False),
}


@pytest.mark.parametrize("horizon_s,covers", RAMP_CASES.values(), ids=RAMP_CASES.keys())
def test_a_ramp_is_met_at_its_current_rate(horizon_s, covers):
    need_now = math.ceil(ramp(76.0) / (10 * 0.7))
    assert (replicas_during_a_ramp(horizon_s, 76.0) >= need_now) is covers
