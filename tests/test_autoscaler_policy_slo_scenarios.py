"""The slo policy, as a pure function: named scenarios against a simulated plant (steady load, ramp, spike,
drop, oscillation, lagging replicas, restart, forecast), single decisions (latency feedback, concurrency,
bounds), and slo against hpa on the same plant."""

from __future__ import annotations

import math

import pytest

from autoscaler.config import Config
from autoscaler.policy import State, decide
from tests.test_autoscaler_policy import POLL_S, first_slo_decision, hpa_config, observed, slo_config


def simulate(config: Config, rate_at, start_replicas: int, duration_s: float, p95_at=None, t0_s: float = 0.0,
             state: State | None = None, ready_lag_polls: int = 0):
    """Run the policy against a plant whose replicas become ready `ready_lag_polls` polls after a change.

    Returns (state, [(t_s, rate, decision), ...]).
    """
    state = state or State()
    current = start_replicas
    history: list[int] = []
    trace = []
    t = t0_s
    while t <= t0_s + duration_s + 1e-9:
        history.append(current)
        ready = min(history[-1 - ready_lag_polls] if len(history) > ready_lag_polls else history[0], current)
        rate = rate_at(t)
        p95 = p95_at(t, rate, ready) if p95_at else 100.0
        obs = observed(current, ready, rate_rps=rate, p95_ms=p95, inflight=rate * 0.1)
        d = decide(obs, state, config, t)
        state = d.state
        trace.append((t, rate, d, current))
        current = d.replicas
        t += POLL_S
    return state, trace


def changes(trace) -> int:
    return sum(1 for _, _, d, cur in trace if d.replicas != cur)


# --- slo policy scenarios -------------------------------------------------------------------------

def replicas(trace) -> list[int]:
    return [d.replicas for _, _, d, _ in trace]


def downs(trace) -> list[float]:
    return [t for t, _, d, cur in trace if d.replicas < cur]


# Each check gets the trace and the config and asserts what the scenario is about.

def check_steady(trace, cfg):
    # 20 req/s at 10 req/s per replica and 70% target utilization: ceil(20 / 7) = 3 replicas, always.
    assert set(replicas(trace)) == {3} and trace[-1][2].kind == "tolerance"


def check_steady_from_too_few(trace, cfg):
    assert replicas(trace)[:3] == [3, 3, 3]  # x4 cap: 1 -> 3 at once
    assert trace[0][2].reason.startswith("scale-up: demand 2.86 replicas")


def check_ramp(trace, cfg):
    assert replicas(trace) == sorted(replicas(trace))
    assert replicas(trace)[-1] == math.ceil(40 / 7)


def check_spike(trace, cfg):
    after = [(d, cur) for t, _, d, cur in trace if t >= 60]
    assert after[0][0].panic and after[0][0].kind == "panic" and after[0][0].reason.startswith("scale-up: panic")
    for d, cur in after:
        assert d.replicas <= max(4 * cur, cur + 1)  # x4 (at least +1) per decision
        assert d.replicas >= cur                    # no scale-down while panicking
    # The panic window's rate: 5 s at 50 and 1 s at 10 = 43.3 req/s -> ceil(6.19) = 7; then 50 / 7 = 7.14 is
    # within TOLERANCE of 7.
    assert [d.replicas for d, _ in after[:3]] == [7, 7, 7]


def check_drop(trace, cfg):
    times = downs(trace)
    last_high_t = 195.0
    assert times and times[0] >= last_high_t + cfg.scale_down_stabilization_s
    assert all(b - a >= cfg.scale_down_step_s for a, b in zip(times, times[1:]))
    assert all(cur - d.replicas == 1 for _, _, d, cur in trace if d.replicas < cur)
    assert trace[-1][2].replicas == 1


def check_no_flapping(trace, cfg):
    # At most the reaction to the first (single-sample) window and its correction, then nothing.
    assert changes(trace) <= 2
    assert changes([step for step in trace if step[0] >= 200]) == 0


def check_target_not_compounded(trace, cfg):
    assert max(replicas(trace)) == math.ceil(40 / 7) == replicas(trace)[-1]


def check_restart(trace, cfg):
    guard_end = 1000.0 + cfg.stable_window_s
    assert downs(trace)[0] >= guard_end
    assert {d.kind for t, _, d, _ in trace if t < guard_end} == {"restart"}


def check_forecast(trace, cfg):
    assert replicas(trace)[-1] >= math.ceil((2.0 + 0.5 * 90) / 7)  # the demand 30 s after the end
    assert any(d.kind == "forecast" for _, _, d, _ in trace)


def check_idle_start_is_no_trend(trace, cfg):
    # The windowed rate of a flat 5 req/s ramps up from idle over RATE_WINDOW_S; one replica serves it.
    assert set(replicas(trace)) == {1} and not any(d.kind == "forecast" for _, _, d, _ in trace)


def check_no_forecast(trace, cfg):
    assert replicas(trace)[-1] < math.ceil((2.0 + 0.5 * 90) / 7)  # lags the ramp: what forecasting fixes


def windowed_step(t: float) -> float:
    """A 30 s windowed rate() of a step from 20 to 40 req/s at 60 s: it ramps until 90 s."""
    return 20.0 + 20.0 * min(max((t - 60.0) / 30.0, 0.0), 1.0)


def check_step_not_projected(trace, cfg):
    assert max(replicas(trace)) == math.ceil(40.0 / 7)   # what the step needs, no more


def check_step_projected(trace, cfg):
    assert max(replicas(trace)) > math.ceil(40.0 / 7)    # the windowed rate's ramp projected past the step


SCENARIOS = {
    # id: (config overrides, rate(t), start replicas, duration s, simulate() extras, check)
    "steady-load": ({}, lambda t: 20.0, 3, 300, {}, check_steady),
    "steady-load-from-too-few": ({}, lambda t: 20.0, 1, 60, {}, check_steady_from_too_few),
    "ramp": ({}, lambda t: 5.0 + 35.0 * min(t, 120.0) / 120.0, 1, 180, {}, check_ramp),
    "spike-5x-panic": ({}, lambda t: 10.0 if t < 60 else 50.0, 2, 100, {}, check_spike),
    "drop-stabilized-stepped": ({}, lambda t: 50.0 if t < 200 else 5.0, 8, 420, {}, check_drop),
    "oscillating-within-tolerance": ({}, lambda t: 18.0 if int(t / POLL_S) % 2 else 22.0, 3, 600, {},
                                     check_no_flapping),
    "oscillating-plus-minus-30pct": ({}, lambda t: 14.0 if int(t / POLL_S) % 2 else 26.0, 3, 600, {},
                                     check_no_flapping),
    "ready-lags-target": ({}, lambda t: 40.0, 1, 120, {"ready_lag_polls": 3}, check_target_not_compounded),
    "restart-no-scale-down-first-window": ({}, lambda t: 1.0, 6, 200, {"t0_s": 1000.0}, check_restart),
    "forecast-on-a-ramp": ({"forecast_horizon_s": 30}, lambda t: 2.0 + 0.5 * t, 1, 60, {}, check_forecast),
    "same-ramp-without-forecast": ({}, lambda t: 2.0 + 0.5 * t, 1, 60, {}, check_no_forecast),
    "step-is-not-projected-once-the-recent-rates-are-flat": (
        {"forecast_horizon_s": 30, "rate_window_s": 30}, windowed_step, 3, 150, {}, check_step_not_projected),
    "without-confirmation-the-step-is-projected": (
        {"forecast_horizon_s": 30, "rate_window_s": 30, "forecast_confirm_s": 0}, windowed_step, 3, 150, {},
        check_step_projected),
    "windowed-rate-filling-after-idle-is-no-trend": (
        {"forecast_horizon_s": 30, "rate_window_s": 30}, lambda t: 5.0 * min(max(t, 0.0), 30.0) / 30.0, 1, 120, {},
        check_idle_start_is_no_trend),
}


@pytest.mark.parametrize("overrides,rate_at,start,duration_s,extra,check", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_slo_scenarios(overrides, rate_at, start, duration_s, extra, check):
    cfg = slo_config(**overrides)
    _, trace = simulate(cfg, rate_at, start_replicas=start, duration_s=duration_s, **extra)
    check(trace, cfg)


SINGLE_DECISIONS = {
    # id: (config overrides, observation, expected replicas, expected kind, reason prefix)
    "p95-over-slo-scales-up-though-load-says-enough": (
        {}, observed(2, rate_rps=5.0, p95_ms=812.0, inflight=1.0), 4, "latency",
        "scale-up: p95 812ms > slo 500ms"),  # ceil(2 x min(812/500, 2))
    "p95-over-slo-waits-for-starting-replicas": (
        {}, observed(4, 2, rate_rps=26.0, p95_ms=812.0, inflight=1.0), 4, "starting",
        "hold: p95 812ms > slo 500ms, waiting for 2 starting replica(s)"),
    "p95-inf-bucket-doubles": (
        {}, observed(2, rate_rps=5.0, p95_ms=math.inf, inflight=1.0), 4, "latency", "scale-up: p95 inf > slo"),
    "p95-over-slo-outweighs-low-demand": (
        {}, observed(5, rate_rps=1.0, p95_ms=900.0, inflight=0.1), 9, "latency", "scale-up: p95 900ms"),
    "p95-over-slo-blocks-scale-down": (
        {}, observed(5, 3, rate_rps=1.0, p95_ms=900.0, inflight=0.1), 5, "latency",
        "hold: p95 900ms > slo 500ms, no scale-down"),
    "queueing-at-flat-rate-via-concurrency": (
        {"target_inflight_per_replica": 4, "capacity_rps_per_replica": 0},
        observed(2, rate_rps=10.0, p95_ms=300.0, inflight=14.0), 5, "load", "scale-up: demand 5.00"),
    "starting-replicas-ignore-the-backlog-in-flight": (
        {"target_inflight_per_replica": 4}, observed(2, 1, rate_rps=10.0, p95_ms=300.0, inflight=40.0), 2,
        "tolerance", "hold: within tolerance (demand 1.43 replicas"),
    "below-min": ({}, observed(0, rate_rps=500.0, p95_ms=100.0), 1, "bounds", "scale-up: below MIN_REPLICAS"),
    "above-max": ({}, observed(14, rate_rps=500.0, p95_ms=100.0), 10, "bounds",
                  "scale-down: above MAX_REPLICAS"),
    "at-max-holds": ({}, observed(10, rate_rps=500.0, p95_ms=100.0), 10, "at-max", "hold: at MAX_REPLICAS 10"),
    "idle-nan-p95-is-data": ({}, observed(1, rate_rps=0.0, p95_ms=None, inflight=0.0), 1, "tolerance",
                             "hold: within tolerance"),
}


@pytest.mark.parametrize("overrides,obs,want,kind,reason", SINGLE_DECISIONS.values(), ids=SINGLE_DECISIONS.keys())
def test_slo_single_decisions(overrides, obs, want, kind, reason):
    assert first_slo_decision(obs, overrides, want, kind, reason).state.failures == 0


def test_latency_feedback_and_learning_wait_until_the_windows_show_the_new_capacity():
    cfg = slo_config(capacity_learning=True, rate_window_s=30)
    lagging = observed(2, rate_rps=12.0, p95_ms=812.0, inflight=1.0)  # p95 of the window before the scale-up
    up = decide(observed(1, rate_rps=12.0, p95_ms=812.0, inflight=1.0), State(started_s=0.0), cfg, 100.0)
    assert up.replicas == 2
    d = decide(lagging, up.state, cfg, 110.0)
    assert (d.replicas, d.kind) == (2, "settling") and d.state.policy.capacity_rps == 10
    d = decide(lagging, d.state, cfg, 131.0)  # 30 s on, the p95 is the new replicas' own
    assert (d.replicas, d.kind) == (4, "latency") and d.state.policy.capacity_rps < 10


# --- slo against hpa on the same plant -----------------------------------------------------------------

def run_plant(cfg: Config, rate_at, duration_s: float, start_lag_polls: int = 2):
    """A plant where one replica serves 10 req/s with one core and p95 breaks the SLO above 90% load.

    New replicas serve after `start_lag_polls` polls. Returns (replica-seconds, polls over the SLO).
    """
    state, current, t = State(), 1, 0.0
    started: list[tuple[float, int]] = []   # (ready at, count) of replicas still starting
    ready = 1
    replica_s, over_slo = 0.0, 0
    while t <= duration_s:
        ready += sum(n for at, n in started if at <= t)
        started = [(at, n) for at, n in started if at > t]
        ready = min(ready, current)
        rate = rate_at(t)
        load = rate / (10.0 * max(ready, 1))
        p95 = 120.0 if load < 0.9 else 900.0
        over_slo += p95 > cfg.slo_p95_ms
        obs = observed(current, ready, rate_rps=rate, p95_ms=p95, inflight=rate * p95 / 1000,
                       cpu_cores=min(rate / 10.0, float(ready)))
        d = decide(obs, state, cfg, t)
        state = d.state
        if d.replicas > current:
            started.append((t + start_lag_polls * POLL_S, d.replicas - current))
        current = d.replicas
        replica_s += current * POLL_S
        t += POLL_S
    return replica_s, over_slo


def burst_then_quiet(t: float) -> float:
    return 30.0 if 100 <= t < 220 else 5.0


def test_slo_uses_fewer_replica_seconds_than_hpa_at_no_worse_latency():
    slo = run_plant(slo_config(capacity_learning=True, target_inflight_per_replica=4), burst_then_quiet, 700)
    hpa50 = run_plant(hpa_config(hpa_target_cpu=0.5), burst_then_quiet, 700)
    hpa90 = run_plant(hpa_config(hpa_target_cpu=0.9), burst_then_quiet, 700)
    assert slo[0] < hpa50[0] and slo[1] <= hpa50[1], (slo, hpa50)
    assert slo[0] < hpa90[0] and slo[1] <= hpa90[1], (slo, hpa90)
