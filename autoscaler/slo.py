"""The `slo` policy: capacity-based demand, latency feedback, Knative-style stable/panic windows.

demand (in replicas) = load / (per-replica capacity x TARGET_UTILIZATION), where load is the request
rate (capacity CAPACITY_RPS_PER_REPLICA, learned online). The in-flight concurrency (capacity
TARGET_INFLIGHT_PER_REPLICA) stands in for the rate only where the rate is unknown (or
CAPACITY_RPS_PER_REPLICA=0): on overloaded replicas it measures the backlog (queue limit x replicas), not
the demand, and it stays inflated in the windows for a minute after the overload has ended.

Why each piece exists:
- stable window mean: the steady demand, insensitive to a single noisy scrape;
- recent rate: the windowed rate (RATE_WINDOW_S, 30 s) lags a step by half a window and shows a 3x
  step as a 1.3x one on the first poll after it. From the change of the windowed rate between polls
  and the policy's own estimate of the interval that left the window, the rate of the last poll
  interval is reconstructed (`recent_rate`), so a step is seen at its size one poll after it;
- panic window: the recent rate over PANIC_WINDOW_S. Panic (that demand >= PANIC_THRESHOLD x the ready
  replicas) adds it to the demand and forbids scale-down for a stable window, so a burst's replicas
  are not released in its gaps. Outside panic it does not count (as in Knative): a burst shorter than
  a replica's start-up is over before a replica asked for it is ready, while every replica asked for
  is remembered for SCALE_DOWN_STABILIZATION_S;
- forecast: a linear trend of the rate, projected FORECAST_HORIZON_S ahead, so a ramp finds
  replicas ready instead of queueing while they start; fitted only on rates whose window was full of
  traffic, since the windowed rate of a load that starts from idle ramps up by itself;
- latency feedback: p95 above the SLO adds replicas even when the load model says enough - the model
  is an estimate, the SLO is the goal. Only when no replica is still starting, otherwise the same
  slowness would be answered twice;
- learned capacity: only from a steady, settled window (full of traffic, rate within TOLERANCE of the
  previous poll's, no replica starting and RATE_WINDOW_S past the last change), see `learn_capacity`;
- up: immediate, at most SCALE_UP_MAX_RATIO x (at least +1) per decision, from the target count (not the
  lagging count of running replicas, which would compound the same step on every poll);
- down: only to the highest demand of SCALE_DOWN_STABILIZATION_S (the demand itself, not the count a
  tolerance hold kept), at most SCALE_DOWN_MAX_FRACTION of the replicas (at least one) per
  SCALE_DOWN_STEP_S, never while panicking, while p95 misses the SLO, or in the first stable window
  after a restart (its windows are empty, the past is unknown);
- tolerance: demand within 10% of the current capacity holds, so noise does not flap.

What it remembers between polls (windows, recommendations, panic, learned capacity) is its own
`SloState`, carried in `State.policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .config import Config
from .decision import Decision, Observation, State, clamp

# Capacity learning: how far one observation moves the estimate, and how far the estimate may move
# from the configured value (a bad metric must not teach it that a replica serves 0 or 1e6 req/s).
LEARN_RATE = 0.2
LEARN_BOUND = 8.0
# p95 at or below this fraction of the SLO means replicas have room.
ROOM_SLO = 0.5


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


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _slope(samples: tuple[Sample, ...]) -> float | None:
    """Least-squares slope of the rate over time (req/s per s), or None with too few points."""
    pts = [(s.t_s, s.rate_rps) for s in samples if s.rate_rps is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var <= 0:
        return None
    return sum((t - mt) * (r - mr) for t, r in pts) / var


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

    Called only on a steady, settled window (decide_slo says when): on a moving load the windowed rate
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
    if (not config.capacity_learning or config.capacity_rps_per_replica <= 0 or obs.p95_ms is None
            or obs.rate_rps is None or obs.rate_rps <= 0 or obs.ready_replicas <= 0
            or obs.ready_replicas < obs.current_replicas):
        return capacity_rps
    per_replica = obs.rate_rps / obs.ready_replicas
    if obs.p95_ms > config.slo_p95_ms and per_replica < capacity_rps:
        capacity_rps += LEARN_RATE * (per_replica - capacity_rps)
    elif obs.p95_ms <= ROOM_SLO * config.slo_p95_ms and per_replica > capacity_rps:
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


def _ceil(x: float) -> int:
    # Float noise (2.0000000001) must not cost a replica.
    return math.ceil(x - 1e-9)


def decide_slo(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    own: SloState = state.policy
    current = obs.current_replicas
    capacity = own.capacity_rps if own.capacity_rps is not None else config.capacity_rps_per_replica
    # Windowed signals (rate, p95) describe the last RATE_WINDOW_S: after a change of capacity they
    # still show the old one for that long. Latency feedback and capacity learning wait for them, or a
    # single overload would be answered again (and learned from) once the new replicas already serve.
    starting = max(current - obs.ready_replicas, 0)
    settled_at = own.settled_at_s
    if starting:
        settled_at = now_s + config.rate_window_s
    settled = settled_at is None or now_s >= settled_at
    # A windowed rate() ramps up over RATE_WINDOW_S whenever traffic starts from idle, however flat the
    # traffic itself is: that ramp is no trend, so the forecast fits only samples whose window was full.
    traffic_since = own.traffic_since_s
    if obs.rate_rps is None or obs.rate_rps <= 0:
        traffic_since = None
    elif traffic_since is None:
        traffic_since = now_s
    window_full = traffic_since is not None and now_s >= traffic_since + config.rate_window_s

    older = tuple(s for s in own.samples if s.t_s > now_s - config.stable_window_s)
    prev_rate = next((s.rate_rps for s in reversed(older) if s.rate_rps is not None), None)
    steady = (window_full and obs.rate_rps is not None and prev_rate is not None
              and abs(obs.rate_rps - prev_rate) <= config.tolerance * prev_rate)
    if settled and steady:
        capacity = learn_capacity(obs, capacity, config)

    # The rate is the demand; the in-flight count only stands in for it when it is unknown.
    use_inflight = obs.rate_rps is None or capacity <= 0
    recent, span = recent_rate(older, now_s, obs.rate_rps, config.rate_window_s, config.recent_rate_memory)
    samples = older + (Sample(now_s, obs.rate_rps, obs.inflight if use_inflight else None, recent, span),)
    panic_samples = [s for s in samples if s.t_s > now_s - config.panic_window_s] or [samples[-1]]

    def inflight_mean(window):
        return _mean(s.inflight for s in window) if use_inflight else None

    need_stable = _demand(_mean(s.rate_rps for s in samples), inflight_mean(samples), capacity, config)
    need_panic = _demand(_recent_mean(samples, now_s - config.panic_window_s), inflight_mean(panic_samples),
                         capacity, config)
    trend = tuple(s for s in samples if traffic_since is not None and s.t_s >= traffic_since + config.rate_window_s)
    need_forecast = 0.0
    slope = _slope(trend) if config.forecast_horizon_s > 0 else None
    if slope is not None and slope > 0 and obs.rate_rps is not None and capacity > 0:
        need_forecast = (obs.rate_rps + slope * config.forecast_horizon_s) / (capacity * config.target_utilization)

    panic_until = own.panic_until_s
    if need_panic >= config.panic_threshold * max(obs.ready_replicas, 1):
        panic_until = now_s + config.stable_window_s
    panic = panic_until is not None and now_s < panic_until

    need = max(need_stable, need_forecast, need_panic if panic else 0.0)
    driver = "panic" if panic and need_panic > need_stable else "load"
    if need_forecast > max(need_stable, need_panic if panic else 0.0):
        driver = "forecast"
    demanded = _ceil(need)   # what the stabilization window remembers, tolerance or not
    if current > 0 and abs(need / current - 1.0) <= config.tolerance:
        want = current
    else:
        want = demanded

    p95 = obs.p95_ms
    slo_missed = p95 is not None and p95 > config.slo_p95_ms and (obs.rate_rps is None or obs.rate_rps > 0)
    latency_reason = f"p95 {_ms(p95)} > slo {_ms(config.slo_p95_ms)}" if slo_missed else ""
    if slo_missed and starting == 0 and settled:
        want_latency = max(_ceil(current * min(p95 / config.slo_p95_ms, 2.0)), current + 1)
        demanded = max(demanded, want_latency)
        if want_latency > want:
            want, driver = want_latency, "latency"

    unbounded = want
    want = clamp(want, config.min_replicas, config.max_replicas)
    recommendations = tuple(r for r in own.recommendations if r[0] > now_s - config.scale_down_stabilization_s)
    recommendations += ((now_s, clamp(demanded, config.min_replicas, config.max_replicas)),)
    details = {"need_stable": round(need_stable, 3), "need_panic": round(need_panic, 3),
               "need_forecast": round(need_forecast, 3), "capacity_rps": round(capacity, 3), "want": want}
    if recent is not None:
        details["recent_rps"] = round(recent, 3)
    new_own = replace(own, samples=samples, recommendations=recommendations, panic_until_s=panic_until,
                      capacity_rps=capacity, settled_at_s=settled_at, traffic_since_s=traffic_since)

    def done(replicas: int, reason: str, kind: str, **changes) -> Decision:
        if replicas > current:  # (after a scale-down the lagging p95 understates, so no wait is needed)
            changes["settled_at_s"] = now_s + config.rate_window_s
        return Decision(replicas, replace(state, policy=replace(new_own, **changes)), reason, kind, panic,
                        details)

    load_text = _load_text(obs, need, capacity, config)
    if current > config.max_replicas:
        return done(config.max_replicas, f"scale-down: above MAX_REPLICAS {config.max_replicas}", "bounds",
                    last_scale_down_s=now_s)
    if current < config.min_replicas:
        return done(config.min_replicas, f"scale-up: below MIN_REPLICAS {config.min_replicas}", "bounds")

    if want > current:
        limit = max(_ceil(config.scale_up_max_ratio * current), current + 1)
        target = min(want, limit, config.max_replicas)
        if target <= current:
            return done(current, f"hold: at MAX_REPLICAS {config.max_replicas} ({load_text})", "at-max")
        why = {"latency": latency_reason, "panic": f"panic, {load_text}", "forecast":
               f"forecast {need_forecast:.2f} replicas in {_fmt_s(config.forecast_horizon_s)}, {load_text}",
               "load": load_text}[driver]
        capped = f", capped from {want}" if target < want else ""
        return done(target, f"scale-up: {why}{capped}", driver)

    if want < current:
        if panic:
            return done(current, f"hold: panic, no scale-down ({load_text})", "panic")
        if state.started_s is not None and now_s - state.started_s < config.stable_window_s:
            return done(current, f"hold: started {now_s - state.started_s:.0f}s ago, no scale-down in the "
                        f"first {_fmt_s(config.stable_window_s)}", "restart")
        if slo_missed:
            return done(current, f"hold: {latency_reason}, no scale-down", "latency")
        stabilized = max(r for _, r in recommendations)
        if stabilized >= current:
            return done(current, f"hold: stabilizing, max recommendation {stabilized} over "
                        f"{_fmt_s(config.scale_down_stabilization_s)} ({load_text})", "stabilizing")
        if own.last_scale_down_s is not None and now_s - own.last_scale_down_s < config.scale_down_step_s:
            return done(current, f"hold: last scale-down {now_s - own.last_scale_down_s:.0f}s ago, one step per "
                        f"{_fmt_s(config.scale_down_step_s)}", "step")
        step = max(1, math.floor(config.scale_down_max_fraction * current + 1e-9))
        target = max(current - step, stabilized, config.min_replicas)
        return done(target, f"scale-down: {load_text}", "load", last_scale_down_s=now_s)

    if slo_missed and starting:
        return done(current, f"hold: {latency_reason}, waiting for {starting} starting replica(s)", "starting")
    if slo_missed and not settled:
        return done(current, f"hold: {latency_reason}, waiting {settled_at - now_s:.0f}s for the metrics to "
                    "show the new capacity", "settling")
    if current == config.max_replicas and unbounded > current:
        why = latency_reason or load_text
        return done(current, f"hold: at MAX_REPLICAS {config.max_replicas} ({why})", "at-max")
    return done(current, f"hold: within tolerance ({load_text})", "tolerance")


def _load_text(obs: Observation, need: float, capacity: float, config: Config) -> str:
    parts = [f"demand {need:.2f} replicas"]
    if obs.rate_rps is not None:
        parts.append(f"rate {obs.rate_rps:.1f}rps at {capacity:.1f}rps/replica")
    if obs.inflight is not None:
        parts.append(f"inflight {obs.inflight:.1f}")
    return ", ".join(parts)


def _ms(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.0f}ms"


def _fmt_s(value: float) -> str:
    return f"{value:g}s"
