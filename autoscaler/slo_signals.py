"""The slo policy's signal estimation: what it remembers between polls (`SloState`) and what one poll
says (`estimate` -> `Signals`): the demand in replicas of the stable window, the rise window, the panic
window and the forecast, whether the policy panics, whether the windowed metrics show the current
replicas yet, and whether p95 misses the SLO. The rules that turn these into a replica count are slo.py's.

demand (in replicas) = load / (per-replica capacity x TARGET_UTILIZATION), where load is the request
rate (capacity CAPACITY_RPS_PER_REPLICA, learned online). The in-flight concurrency (capacity
TARGET_INFLIGHT_PER_REPLICA) stands in for the rate only where the rate is unknown (or
CAPACITY_RPS_PER_REPLICA=0): on overloaded replicas it measures the backlog (queue limit x replicas), not
the demand, and it stays inflated in the windows for a minute after the overload has ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .decision import Observation


# Capacity learning: how far one observation moves the estimate, and how far the estimate may move
# from the configured value (a bad metric must not teach it that a replica serves 0 or 1e6 req/s).
LEARN_RATE = 0.2
LEARN_BOUND = 8.0
# p95 at or below this fraction of the SLO means replicas have room.
ROOM_SLO = 0.5
# The recent rates' line counts for the forecast only when its slope is at least this many standard errors
# above zero: on flat traffic, noise alone makes one that steep in about one fit in twenty with the eight
# polls of 15 s at 2 s, one in seven with three (the local stack's 6 s); the TOLERANCE rule then stops most.
TREND_SIGNIFICANCE = 2.0


@dataclass(frozen=True)
class Sample:
    t_s: float
    rate_rps: float | None
    inflight: float | None
    recent_rps: float | None = None   # the request rate over (t_s - span_s, t_s], see recent_rate
    span_s: float = 0.0


@dataclass(frozen=True)
class SloState:
    """What the slo policy remembers between polls (in `State.policy`)."""

    samples: tuple[Sample, ...] = ()                    # the stable window (panic and forecast use its tail)
    recommendations: tuple[tuple[float, int], ...] = ()  # (t_s, replicas) for scale-down stabilization
    last_scale_down_s: float | None = None
    panic_until_s: float | None = None
    settled_at_s: float | None = None                   # metrics reflect the current replicas from then on
    capacity_rps: float | None = None                   # learned per-replica capacity
    traffic_since_s: float | None = None                # when the rate last rose above 0 (None while idle)


@dataclass(frozen=True)
class Signals:
    """One poll, as the slo policy's rules see it. The needs are replicas (fractional)."""

    capacity_rps: float               # per replica, as learned so far
    starting: int                     # replicas asked for that are not ready yet
    settled_at_s: float | None
    settled: bool                     # the windowed metrics show the current replicas
    traffic_since_s: float | None
    samples: tuple[Sample, ...]       # the stable window, this poll's sample last
    recent_rps: float | None          # the rate of the last poll interval (recent_rate)
    need_stable: float                # for the stable window's mean load
    need_rise: float                  # for the mean recent rate of the rise window (0: off or unknown)
    need_panic: float                 # for the panic window's
    need_forecast: float              # for the rate trend ahead (0: no rising trend)
    forecast_ahead_s: float           # how far ahead: FORECAST_HORIZON_S, or FORECAST_RECENT_HORIZON_S
    panic_until_s: float | None
    panic: bool
    slo_missed: bool                  # p95 above the SLO, with traffic (or its rate unknown)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _fit(pts: list[tuple[float, float]], least: int) -> tuple[float, float, float, float] | None:
    """Least squares through (t_s, rate) points: (mean t_s, mean rate, slope in req/s per s, the slope's
    standard error), or None with fewer than `least` points or all at one time."""
    if len(pts) < least:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var <= 0:
        return None
    slope = sum((t - mt) * (r - mr) for t, r in pts) / var
    residual = sum((r - mr - slope * (t - mt)) ** 2 for t, r in pts) / max(n - 2, 1)
    return mt, mr, slope, (residual / var) ** 0.5


def _slope(pts: list[tuple[float, float]], least: int) -> float | None:
    fit = _fit(pts, least)
    return None if fit is None else fit[2]


def _recent_points(samples: tuple[Sample, ...], since_s: float) -> list[tuple[float, float]]:
    # A recent rate is the mean over its interval, so it stands at the interval's middle.
    return [(s.t_s - s.span_s / 2, s.recent_rps) for s in samples if s.recent_rps is not None and s.t_s > since_s]


def _trend_slope(trend: tuple[Sample, ...], now_s: float, config: Config) -> float | None:
    """The rate's trend: the slope of the windowed rates, but no steeper than the recent rates of the last
    FORECAST_CONFIRM_S show it. A step in the rate ramps the windowed rate for a whole RATE_WINDOW_S, which
    alone would project a step that has already ended as far again; the recent rates are flat after it."""
    slope = _slope([(s.t_s, s.rate_rps) for s in trend if s.rate_rps is not None], 3)
    if slope is None or slope <= 0 or config.forecast_confirm_s <= 0:
        return slope
    confirmed = _slope(_recent_points(trend, now_s - config.forecast_confirm_s), 2)
    return slope if confirmed is None else min(slope, confirmed)


def recent_line_rate(samples: tuple[Sample, ...], now_s: float, config: Config) -> float | None:
    """Where the line through the recent rates of the last FORECAST_CONFIRM_S will be
    FORECAST_RECENT_HORIZON_S from now, when it rises clearly (TREND_SIGNIFICANCE); else None.

    The windowed rate lags a ramp by half RATE_WINDOW_S, and its slope reaches the ramp's only a whole
    window into it, so the windowed trend alone meets a fast ramp late. The recent rates are the
    current rate (one poll late), and their line's slope is the ramp's from its first polls on; a short
    horizon (a replica's start-up and a poll) is all they need. A step reads as a rise, projected past its
    size, until it has left the window; after that the rates are flat: no slope."""
    if config.forecast_recent_horizon_s <= 0 or config.forecast_confirm_s <= 0:
        return None
    since_s = now_s - config.forecast_confirm_s
    # Only intervals centred in the window: the first poll's, and an idle one's, span a whole RATE_WINDOW_S.
    fit = _fit([p for p in _recent_points(samples, since_s) if p[0] >= since_s - 1e-9], 3)
    if fit is None:
        return None
    mean_t, mean_rate, slope, error = fit
    # A rise within TOLERANCE over the window is what the tolerance band ignores anyway; counting it would
    # project the drift of the reconstruction's own errors.
    if slope <= TREND_SIGNIFICANCE * error or slope * config.forecast_confirm_s <= config.tolerance * mean_rate:
        return None
    return mean_rate + slope * (now_s + config.forecast_recent_horizon_s - mean_t)


def _rate_during(samples: tuple[Sample, ...], t_s: float) -> float | None:
    """The recent rate estimated for time t_s: that of the newest sample whose interval holds it."""
    for s in reversed(samples):
        if s.recent_rps is not None and s.t_s - s.span_s < t_s <= s.t_s:
            return s.recent_rps
    return None


def recent_rate(samples: tuple[Sample, ...], now_s: float, rate_rps: float | None, window_s: float,
                memory: float) -> tuple[float | None, float]:
    """(request rate over the last poll interval, that interval's length), from the windowed rate.

    rate(t) = (C(t) - C(t - W)) / W for the request counter C and W = RATE_WINDOW_S, so between two polls
    W x (rate_now - rate_prev) = what arrived in the last interval - what arrived in the interval that
    has left the window, W earlier. That one's rate is this function's own earlier estimate (an idle
    window, rate 0, says 0), shrunk toward the previous window's mean by `memory`: with memory 1 an
    error (scrape jitter, a pod's series joining or leaving the sum) would come back every W; with 0
    the window is assumed flat. Without a previous rate, or with polls W or more apart, it is the
    windowed rate itself (over the whole window).
    """
    if rate_rps is None:
        return None, window_s
    if rate_rps == 0:
        return 0.0, window_s   # an idle window: nothing arrived in any part of it
    prev = next((s for s in reversed(samples) if s.rate_rps is not None), None)
    dt = now_s - prev.t_s if prev is not None else 0.0
    if prev is None or not 0 < dt < window_s:
        return rate_rps, window_s
    left = _rate_during(samples, (prev.t_s + now_s) / 2 - window_s)
    if left is None:
        left = prev.rate_rps
    left = memory * left + (1.0 - memory) * prev.rate_rps
    # What arrived in the last interval is between nothing and all that the window holds.
    return min(max(left + window_s / dt * (rate_rps - prev.rate_rps), 0.0), rate_rps * window_s / dt), dt


def _recent_mean(samples: tuple[Sample, ...], since_s: float) -> float | None:
    """Mean recent rate since since_s: each interval weighted by its part after since_s."""
    total = weight = 0.0
    for s in samples:
        w = min(s.span_s, s.t_s - since_s)
        if s.recent_rps is not None and w > 0:
            total += w * s.recent_rps
            weight += w
    return total / weight if weight > 0 else None


def learn_capacity(obs: Observation, capacity_rps: float, config: Config) -> float:
    """Move the per-replica capacity toward what replicas sustain within the SLO.

    Called only on a steady, settled window (estimate says when): on a moving load the windowed rate
    is not what the replicas serve now, and its p95 mixes two loads.
    - p95 over the SLO: the replicas are past their capacity, so it is at most what each serves now;
    - p95 well below the SLO (<= ROOM_SLO) while each replica serves more than assumed: it is at least
      that.
    In between nothing is learned: p95 near the SLO is what a bursty load shows at a moderate mean.
    CPU time is no measure of it either: a batching replica's CPU per request falls as its batches fill,
    so rate / cpu_cores at a partial load understates what it serves at full load (the default sim
    profile: 40 requests per core-second one image at a time, 60 in full batches of 8, 54 within the
    SLO; on twitter-1h it taught 45 instead of 54).
    """
    m, ready = obs.metrics, obs.status.ready
    if (not config.capacity_learning or config.capacity_rps_per_replica <= 0 or m.p95_ms is None
            or m.rate_rps is None or m.rate_rps <= 0 or ready <= 0 or ready < obs.status.current):
        return capacity_rps
    per_replica = m.rate_rps / ready
    if m.p95_ms > config.slo_p95_ms and per_replica < capacity_rps:
        capacity_rps += LEARN_RATE * (per_replica - capacity_rps)
    elif m.p95_ms <= ROOM_SLO * config.slo_p95_ms and per_replica > capacity_rps:
        capacity_rps += LEARN_RATE * (per_replica - capacity_rps)
    base = config.capacity_rps_per_replica
    return min(max(capacity_rps, base / LEARN_BOUND), base * LEARN_BOUND)


def _demand(rate: float | None, inflight: float | None, capacity_rps: float, config: Config) -> float:
    """Replicas (fractional) needed for this load at the target utilization."""
    need = 0.0
    if rate is not None and capacity_rps > 0:
        need = max(need, rate / (capacity_rps * config.target_utilization))
    if inflight is not None and config.target_inflight_per_replica > 0:
        need = max(need, inflight / (config.target_inflight_per_replica * config.target_utilization))
    return need


def estimate(obs: Observation, own: SloState, config: Config, now_s: float) -> Signals:
    m, current, ready = obs.metrics, obs.status.current, obs.status.ready
    capacity = own.capacity_rps if own.capacity_rps is not None else config.capacity_rps_per_replica
    # Windowed signals (rate, p95) describe the last RATE_WINDOW_S: after a change of capacity they
    # still show the old one for that long. Latency feedback and capacity learning wait for them, or a
    # single overload would be answered again (and learned from) once the new replicas already serve.
    starting = max(current - ready, 0)
    settled_at = now_s + config.rate_window_s if starting else own.settled_at_s
    settled = settled_at is None or now_s >= settled_at
    # A windowed rate() ramps up over RATE_WINDOW_S whenever traffic starts from idle, however flat the
    # traffic itself is: that ramp is no trend, so the forecast fits only samples whose window was full.
    traffic_since = own.traffic_since_s
    if m.rate_rps is None or m.rate_rps <= 0:
        traffic_since = None
    elif traffic_since is None:
        traffic_since = now_s
    window_full = traffic_since is not None and now_s >= traffic_since + config.rate_window_s

    older = tuple(s for s in own.samples if s.t_s > now_s - config.stable_window_s)
    prev_rate = next((s.rate_rps for s in reversed(older) if s.rate_rps is not None), None)
    steady = (window_full and m.rate_rps is not None and prev_rate is not None
              and abs(m.rate_rps - prev_rate) <= config.tolerance * prev_rate)
    if settled and steady:
        capacity = learn_capacity(obs, capacity, config)

    # The rate is the demand; the in-flight count only stands in for it when it is unknown.
    use_inflight = m.rate_rps is None or capacity <= 0
    recent, span = recent_rate(older, now_s, m.rate_rps, config.rate_window_s, config.recent_rate_memory)
    samples = older + (Sample(now_s, m.rate_rps, m.inflight if use_inflight else None, recent, span),)
    panic_samples = [s for s in samples if s.t_s > now_s - config.panic_window_s] or [samples[-1]]

    def inflight_mean(window):
        return _mean(s.inflight for s in window) if use_inflight else None

    need_stable = _demand(_mean(s.rate_rps for s in samples), inflight_mean(samples), capacity, config)
    rise_rate = _recent_mean(samples, now_s - config.rise_window_s) if config.rise_window_s > 0 else None
    need_rise = _demand(rise_rate, None, capacity, config) if not use_inflight else 0.0
    need_panic = _demand(_recent_mean(samples, now_s - config.panic_window_s), inflight_mean(panic_samples),
                         capacity, config)
    trend = tuple(s for s in samples if traffic_since is not None and s.t_s >= traffic_since + config.rate_window_s)
    need_forecast, forecast_ahead_s = 0.0, config.forecast_horizon_s
    slope = _trend_slope(trend, now_s, config) if config.forecast_horizon_s > 0 else None
    if slope is not None and slope > 0 and m.rate_rps is not None and capacity > 0:
        need_forecast = (m.rate_rps + slope * config.forecast_horizon_s) / (capacity * config.target_utilization)
    line_rate = recent_line_rate(samples, now_s, config) if not use_inflight else None
    if line_rate is not None and capacity > 0:
        need_line = line_rate / (capacity * config.target_utilization)
        if need_line > need_forecast:
            need_forecast, forecast_ahead_s = need_line, config.forecast_recent_horizon_s

    panic_until = own.panic_until_s
    if need_panic >= config.panic_threshold * max(ready, 1):
        panic_until = now_s + config.stable_window_s
    slo_missed = (m.p95_ms is not None and m.p95_ms > config.slo_p95_ms
                  and (m.rate_rps is None or m.rate_rps > 0))
    return Signals(capacity, starting, settled_at, settled, traffic_since, samples, recent, need_stable, need_rise,
                   need_panic, need_forecast, forecast_ahead_s, panic_until,
                   panic_until is not None and now_s < panic_until, slo_missed)
