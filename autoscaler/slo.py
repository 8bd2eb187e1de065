"""The `slo` policy: capacity-based demand, latency feedback, Knative-style stable/panic windows.

Two steps: `slo_signals.estimate` turns the poll into signals (demands in replicas, panic, whether the
metrics have settled, whether p95 misses the SLO); `decide_slo` here turns those into a count by the
rules below. Why each piece exists:
- stable window mean: the steady demand, insensitive to a single noisy scrape;
- recent rate: the windowed rate (RATE_WINDOW_S, 30 s) lags a step by half a window and shows a 3x
  step as a 1.3x one on the first poll after it. From the change of the windowed rate between polls
  and the policy's own estimate of the interval that left the window, the rate of the last poll
  interval is reconstructed (`recent_rate`), so a step is seen at its size one poll after it;
- rise window: the mean recent rate over RISE_WINDOW_S (20 s) counts like the stable mean, so it only
  ever adds replicas (a scale-down still waits for the stable mean and the stabilization). The stable
  window's mean of windowed rates shows a step at its full size only after both windows (60 s of 30 s
  rates), and a step short of panic's 2x would otherwise wait for the forecast's trend. On the simulated
  matrix it kept the same windows at 1.6-4.2% fewer replica-seconds with a 0.88 utilisation target than the
  stable window alone did at 0.85;
- panic window: the recent rate over PANIC_WINDOW_S. Panic (that demand >= PANIC_THRESHOLD x the ready
  replicas) adds it to the demand and forbids scale-down for a stable window, so a burst's replicas
  are not released in its gaps. Outside panic it does not count (as in Knative): a burst shorter than
  a replica's start-up is over before a replica asked for it is ready, while every replica asked for
  is remembered for SCALE_DOWN_STABILIZATION_S;
- forecast: a linear trend of the rate, projected FORECAST_HORIZON_S ahead, so a ramp finds
  replicas ready instead of queueing while they start; fitted only on rates whose window was full of
  traffic, since the windowed rate of a load that starts from idle ramps up by itself; and no steeper
  than the recent rates of the last FORECAST_CONFIRM_S show it, since a step ramps the windowed rate for
  a whole RATE_WINDOW_S after it has ended (on the simulated matrix 1.6-10.6% fewer replica-seconds, one
  window more kept on wl.txt x50); and the line through the recent rates of FORECAST_CONFIRM_S,
  projected FORECAST_RECENT_HORIZON_S from now when it rises clearly: the windowed rate lags a ramp by
  half its window, the recent rates do not (`slo_signals.recent_line_rate`);
- latency feedback: p95 above the SLO adds replicas even when the load model says enough - the model
  is an estimate, the SLO is the goal. Only when no replica is still starting, otherwise the same
  slowness would be answered twice;
- learned capacity: only from a steady, settled window (full of traffic, rate within TOLERANCE of the
  previous poll's, no replica starting and RATE_WINDOW_S past the last change), see `slo_signals.learn_capacity`;
- up: immediate, at most SCALE_UP_MAX_RATIO x (at least +1) per decision, from the target count (not the
  lagging count of running replicas, which would compound the same step on every poll);
- down: only to the highest demand of SCALE_DOWN_STABILIZATION_S (the demand itself, not the count a
  tolerance hold kept), at most SCALE_DOWN_MAX_FRACTION of the replicas (at least one) per
  SCALE_DOWN_STEP_S, never while panicking, while p95 misses the SLO, or in the first stable window
  after a restart (its windows are empty, the past is unknown);
- tolerance: demand within 10% of the current capacity holds, so noise does not flap.

What it remembers between polls (windows, recommendations, panic, learned capacity) is its own
`SloState` (slo_signals.py), carried in `State.policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .config import Config
from .decision import Decision, Observation, State, clamp
from .slo_signals import Signals, SloState, estimate


CAPACITY_GAUGE = "autoscaler_capacity_rps_per_replica"
GAUGES = {CAPACITY_GAUGE: "Per-replica capacity the slo policy currently assumes."}


@dataclass(frozen=True)
class Plan:
    """What the signals ask for, before the rules of scaling up and down."""

    need: float        # replicas (fractional): the largest demand that counts
    demanded: int      # what the scale-down stabilization remembers, tolerance or not
    want: int          # the count asked for, within MIN_REPLICAS..MAX_REPLICAS
    unbounded: int     # the same before the bounds
    driver: str        # what asks for it: load, panic, forecast or latency
    load_text: str
    latency_text: str  # "" unless p95 misses the SLO


def decide_slo(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    own: SloState = state.policy
    sig = estimate(obs, own, config, now_s)
    plan = _plan(obs, sig, config)
    recommendations = tuple(r for r in own.recommendations if r[0] > now_s - config.scale_down_stabilization_s)
    recommendations += ((now_s, clamp(plan.demanded, config.min_replicas, config.max_replicas)),)
    replicas, reason, kind = _rule(obs, state, sig, plan, max(r for _, r in recommendations), config, now_s)
    current = obs.status.current
    new_own = replace(own, samples=sig.samples, recommendations=recommendations, panic_until_s=sig.panic_until_s,
                      capacity_rps=sig.capacity_rps, settled_at_s=sig.settled_at_s, traffic_since_s=sig.traffic_since_s)
    if replicas > current:  # (after a scale-down the lagging p95 understates, so no wait is needed)
        new_own = replace(new_own, settled_at_s=now_s + config.rate_window_s)
    elif replicas < current:
        new_own = replace(new_own, last_scale_down_s=now_s)
    details = {"need_stable": round(sig.need_stable, 3), "need_rise": round(sig.need_rise, 3),
               "need_panic": round(sig.need_panic, 3),
               "need_forecast": round(sig.need_forecast, 3), "capacity_rps": round(sig.capacity_rps, 3),
               "want": plan.want}
    if sig.recent_rps is not None:
        details["recent_rps"] = round(sig.recent_rps, 3)
    return Decision(replicas, replace(state, policy=new_own), reason, kind, sig.panic, details,
                    {CAPACITY_GAUGE: sig.capacity_rps})


def _plan(obs: Observation, sig: Signals, config: Config) -> Plan:
    current = obs.status.current
    panic_need = sig.need_panic if sig.panic else 0.0
    # What asks for the most drives the decision; on a tie the first named (the steady load first).
    driver, need = max((("load", sig.need_stable), ("panic", panic_need), ("rise", sig.need_rise),
                        ("forecast", sig.need_forecast)), key=lambda named: named[1])
    demanded = _ceil(need)
    want = current if current > 0 and abs(need / current - 1.0) <= config.tolerance else demanded
    p95 = obs.metrics.p95_ms
    latency_text = f"p95 {_ms(p95)} > slo {_ms(config.slo_p95_ms)}" if sig.slo_missed else ""
    if sig.slo_missed and sig.starting == 0 and sig.settled:
        want_latency = max(_ceil(current * min(p95 / config.slo_p95_ms, 2.0)), current + 1)
        demanded = max(demanded, want_latency)
        if want_latency > want:
            want, driver = want_latency, "latency"
    return Plan(need, demanded, clamp(want, config.min_replicas, config.max_replicas), want, driver,
                _load_text(obs, need, sig.capacity_rps), latency_text)


def _rule(obs: Observation, state: State, sig: Signals, plan: Plan, stabilized: int, config: Config,
          now_s: float) -> tuple[int, str, str]:
    """(replicas, reason, kind); `stabilized` is the highest recommendation of the stabilization window."""
    current = obs.status.current
    if current > config.max_replicas:
        return config.max_replicas, f"scale-down: above MAX_REPLICAS {config.max_replicas}", "bounds"
    if current < config.min_replicas:
        return config.min_replicas, f"scale-up: below MIN_REPLICAS {config.min_replicas}", "bounds"
    if plan.want > current:
        return _up(current, sig, plan, config)
    if plan.want < current:
        return _down(current, state, sig, plan, stabilized, config, now_s)
    if sig.slo_missed and sig.starting:
        return current, f"hold: {plan.latency_text}, waiting for {sig.starting} starting replica(s)", "starting"
    if sig.slo_missed and not sig.settled:
        return current, (f"hold: {plan.latency_text}, waiting {sig.settled_at_s - now_s:.0f}s for the metrics to "
                         "show the new capacity"), "settling"
    if current == config.max_replicas and plan.unbounded > current:
        why = plan.latency_text or plan.load_text
        return current, f"hold: at MAX_REPLICAS {config.max_replicas} ({why})", "at-max"
    return current, f"hold: within tolerance ({plan.load_text})", "tolerance"


def _up(current: int, sig: Signals, plan: Plan, config: Config) -> tuple[int, str, str]:
    limit = max(_ceil(config.scale_up_max_ratio * current), current + 1)
    target = min(plan.want, limit, config.max_replicas)
    if target <= current:
        return current, f"hold: at MAX_REPLICAS {config.max_replicas} ({plan.load_text})", "at-max"
    why = {"latency": plan.latency_text, "panic": f"panic, {plan.load_text}", "forecast":
           f"forecast {sig.need_forecast:.2f} replicas in {_fmt_s(sig.forecast_ahead_s)}, {plan.load_text}",
           "rise": f"rise, {sig.need_rise:.2f} replicas for the rate of the last "
                   f"{_fmt_s(config.rise_window_s)}, {plan.load_text}",
           "load": plan.load_text}[plan.driver]
    capped = f", capped from {plan.want}" if target < plan.want else ""
    return target, f"scale-up: {why}{capped}", plan.driver


def _down(current: int, state: State, sig: Signals, plan: Plan, stabilized: int, config: Config,
          now_s: float) -> tuple[int, str, str]:
    last_down_s = state.policy.last_scale_down_s
    if sig.panic:
        return current, f"hold: panic, no scale-down ({plan.load_text})", "panic"
    if state.started_s is not None and now_s - state.started_s < config.stable_window_s:
        return current, (f"hold: started {now_s - state.started_s:.0f}s ago, no scale-down in the first "
                         f"{_fmt_s(config.stable_window_s)}"), "restart"
    if sig.slo_missed:
        return current, f"hold: {plan.latency_text}, no scale-down", "latency"
    if stabilized >= current:
        return current, (f"hold: stabilizing, max recommendation {stabilized} over "
                         f"{_fmt_s(config.scale_down_stabilization_s)} ({plan.load_text})"), "stabilizing"
    if last_down_s is not None and now_s - last_down_s < config.scale_down_step_s:
        return current, (f"hold: last scale-down {now_s - last_down_s:.0f}s ago, one step per "
                         f"{_fmt_s(config.scale_down_step_s)}"), "step"
    step = max(1, math.floor(config.scale_down_max_fraction * current + 1e-9))
    return max(current - step, stabilized, config.min_replicas), f"scale-down: {plan.load_text}", "load"


def _load_text(obs: Observation, need: float, capacity: float) -> str:
    m = obs.metrics
    parts = [f"demand {need:.2f} replicas"]
    if m.rate_rps is not None:
        parts.append(f"rate {m.rate_rps:.1f}rps at {capacity:.1f}rps/replica")
    if m.inflight is not None:
        parts.append(f"inflight {m.inflight:.1f}")
    return ", ".join(parts)


def _ceil(x: float) -> int:
    # Float noise (2.0000000001) must not cost a replica.
    return math.ceil(x - 1e-9)


def _ms(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.0f}ms"


def _fmt_s(value: float) -> str:
    return f"{value:g}s"
