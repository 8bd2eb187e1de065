"""The decider, as a pure function: scenarios for the slo policy, hand-computed HPA examples, the
rules shared by every policy (missing data, fallback, static), and the registry that ties them together."""

from __future__ import annotations

import dataclasses
import math
import pytest

from autoscaler.config import Config, ConfigError
from autoscaler.hpa import HpaState, calculate_replicas, scale_up_limit
from autoscaler.outcomes import PollProblem, Unusable
from autoscaler.policies import POLICIES
from autoscaler.policy_names import POLICY_NAMES
from autoscaler.policy import Metrics, Observation, State, decide
from autoscaler.scaling import ScalerStatus
from autoscaler.slo_signals import Sample, SloState, recent_rate

POLL_S = 5.0
REFUSED = PollProblem(Unusable.UNREACHABLE, "connection refused")
TIMEOUT = PollProblem(Unusable.UNREACHABLE, "timeout")


def observed(current: int, ready: int | None = None, **metrics) -> Observation:
    """A poll of `current` replicas asked for, `ready` of them serving (all unless said), with these metrics."""
    ready = current if ready is None else ready
    return Observation(ScalerStatus(current, ready, current), Metrics(**metrics))


def slo_config(**overrides) -> Config:
    # RATE_WINDOW_S is one poll here: the scenarios' rate(t) is then also the rate of the last poll interval,
    # which the policy would otherwise reconstruct from a 30 s window (tests of that set rate_window_s=30).
    base = dict(policy="slo", scaler="dry-run", min_replicas=1, max_replicas=10, capacity_rps_per_replica=10,
                target_inflight_per_replica=0, target_utilization=0.7, stable_window_s=60, panic_window_s=6,
                rise_window_s=0, rate_window_s=int(POLL_S),
                scale_down_stabilization_s=120, scale_down_step_s=10, tolerance=0.1, forecast_horizon_s=0,
                capacity_learning=False, slo_p95_ms=500)
    base.update(overrides)
    return Config(**base).validate()


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
    d = decide(obs, State(started_s=0.0), slo_config(**overrides), 100.0)
    assert (d.replicas, d.kind) == (want, kind)
    assert d.reason.startswith(reason), d.reason
    assert d.state.failures == 0


def test_latency_feedback_and_learning_wait_until_the_windows_show_the_new_capacity():
    cfg = slo_config(capacity_learning=True, rate_window_s=30)
    lagging = observed(2, rate_rps=12.0, p95_ms=812.0, inflight=1.0)  # p95 of the window before the scale-up
    up = decide(observed(1, rate_rps=12.0, p95_ms=812.0, inflight=1.0), State(started_s=0.0), cfg, 100.0)
    assert up.replicas == 2
    d = decide(lagging, up.state, cfg, 110.0)
    assert (d.replicas, d.kind) == (2, "settling") and d.state.policy.capacity_rps == 10
    d = decide(lagging, d.state, cfg, 131.0)  # 30 s on, the p95 is the new replicas' own
    assert (d.replicas, d.kind) == (4, "latency") and d.state.policy.capacity_rps < 10


def steady_state(rate: float, t_s: float = 95.0, traffic_since_s: float = 0.0) -> State:
    """A state whose last poll (t_s) saw `rate`, with traffic since traffic_since_s."""
    return State(started_s=0.0, policy=SloState(samples=(Sample(t_s, rate, None, rate, 5.0),),
                                                traffic_since_s=traffic_since_s))


CAPACITY_CASES = {
    # id: (p95 ms, rate req/s, cpu cores over both replicas, learned capacity after one step); 2 replicas
    "over-slo-lowers-to-what-replicas-serve": (550.0, 12.0, None, 10 + 0.2 * (6 - 10)),
    "over-slo-ignores-cpu": (550.0, 12.0, 1.0, 10 + 0.2 * (6 - 10)),
    "near-slo-is-no-measure": (450.0, 12.0, None, 10),           # a bursty load's p95 at a moderate mean
    "cpu-does-not-raise": (300.0, 20.0, 1.0, 10),               # 20 req per core-second: batching, not capacity
    "cpu-does-not-lower": (200.0, 8.0, 1.6, 10),                # 5 req per core-second at a partial load
    "room-raises-with-cpu-data-too": (100.0, 30.0, 1.0, 10 + 0.2 * (15 - 10)),
    "room-without-cpu-raises": (100.0, 30.0, None, 10 + 0.2 * (15 - 10)),  # 15 req/s per replica, p95 fine
    "middle-keeps": (300.0, 12.0, None, 10),
    "room-serving-less-keeps": (100.0, 1.0, 0.1, 10),
}


@pytest.mark.parametrize("p95_ms,rate,cpu,expected", CAPACITY_CASES.values(), ids=CAPACITY_CASES.keys())
def test_capacity_is_corrected_online(p95_ms, rate, cpu, expected):
    cfg = slo_config(capacity_learning=True)
    obs = observed(2, rate_rps=rate, p95_ms=p95_ms, inflight=1.0, cpu_cores=cpu)
    assert decide(obs, steady_state(rate), cfg, 100.0).state.policy.capacity_rps == pytest.approx(expected)


STEADY_CASES = {
    # id: (previous poll's rate, traffic since s, learned capacity after p95 550 ms at 12 req/s on 2 replicas)
    "steady-full-window-learns": (12.0, 0.0, 10 + 0.2 * (6 - 10)),
    "rate-within-tolerance-learns": (11.0, 0.0, 10 + 0.2 * (6 - 10)),   # |12 - 11| <= 0.1 x 11
    "moving-load-is-not-learned": (10.0, 0.0, 10),                      # |12 - 10| > 0.1 x 10: a ramp's p95
    "window-still-filling-is-not-learned": (12.0, 97.0, 10),            # traffic for 3 s < RATE_WINDOW_S 5
    "first-poll-is-not-learned": (None, None, 10),                      # no previous rate, no traffic yet
}


@pytest.mark.parametrize("prev_rate,since_s,expected", STEADY_CASES.values(), ids=STEADY_CASES.keys())
def test_capacity_is_learned_only_from_a_steady_full_window(prev_rate, since_s, expected):
    cfg = slo_config(capacity_learning=True)
    state = State(started_s=0.0) if prev_rate is None else steady_state(prev_rate, traffic_since_s=since_s)
    obs = observed(2, rate_rps=12.0, p95_ms=550.0, inflight=1.0)
    assert decide(obs, state, cfg, 100.0).state.policy.capacity_rps == pytest.approx(expected)


INFLIGHT_CASES = {
    # id: (config overrides, observation, expected replicas, kind, reason prefix); 40 in flight on 2 replicas
    "rate-known-backlog-is-not-demand": (
        {"target_inflight_per_replica": 4}, observed(2, rate_rps=10.0, p95_ms=300.0, inflight=40.0), 2,
        "tolerance", "hold: within tolerance (demand 1.43 replicas"),   # 10 / (10 x 0.7), not 40 / (4 x 0.7)
    "rate-unknown-in-flight-stands-in": (
        {"target_inflight_per_replica": 4}, observed(2, rate_rps=None, p95_ms=300.0, inflight=40.0), 8,
        "load", "scale-up: demand 14.29 replicas"),              # ceil(14.29) capped at 4 x 2
    "rate-not-used-in-flight-stands-in": (
        {"target_inflight_per_replica": 4, "capacity_rps_per_replica": 0},
        observed(2, rate_rps=10.0, p95_ms=300.0, inflight=40.0), 8, "load",
        "scale-up: demand 14.29 replicas"),
}


@pytest.mark.parametrize("overrides,obs,want,kind,reason", INFLIGHT_CASES.values(), ids=INFLIGHT_CASES.keys())
def test_in_flight_counts_only_where_the_rate_is_unknown(overrides, obs, want, kind, reason):
    d = decide(obs, State(started_s=0.0), slo_config(**overrides), 100.0)
    assert (d.replicas, d.kind) == (want, kind)
    assert d.reason.startswith(reason), d.reason


def history(rates, t0_s: float = 65.0, step_s: float = 5.0, recent=None) -> tuple[Sample, ...]:
    """Samples every step_s from t0_s, with the windowed rates given (and recent rates, default the same)."""
    recent = recent or rates
    return tuple(Sample(t0_s + i * step_s, r, None, x, step_s) for i, (r, x) in enumerate(zip(rates, recent)))


RECENT_CASES = {
    # id: (samples, windowed rate at t=100, memory, expected (recent rate, its interval)); W=30 s, polls every 5 s
    "no-previous-rate-is-the-window": ((), 16.0, 0.8, (16.0, 30.0)),
    "idle-window-is-zero": (history([10.0] * 7), 0.0, 0.8, (0.0, 30.0)),
    "flat-stays-flat": (history([10.0] * 7), 10.0, 0.8, (10.0, 5.0)),
    # 10 -> 50 req/s at t=95: the window gains 5 s x 40 / 30; 0.8 x 10 + 0.2 x 10 + 30 / 5 x 6.667 = 50
    "step-is-seen-at-its-size": (history([10.0] * 7), 10.0 + 40.0 / 6, 0.8, (50.0, 5.0)),
    # restart: only the last poll is known, so the window is taken as flat at its rate: 10 + 6 x 6.667
    "no-history-assumes-a-flat-window": (history([10.0], t0_s=95.0), 10.0 + 40.0 / 6, 0.8, (50.0, 5.0)),
    # the interval that left (65..70 s) was estimated at 40: 0.8 x 40 + 0.2 x 10 + 6 x 0 = 34
    "memory-keeps-part-of-the-old-estimate": (history([10.0] * 7, recent=[10.0, 40.0] + [10.0] * 5), 10.0, 0.8,
                                              (34.0, 5.0)),
    "memory-zero-assumes-the-window-flat": (history([10.0] * 7, recent=[10.0, 40.0] + [10.0] * 5), 10.0, 0.0,
                                            (10.0, 5.0)),
    "drop-is-clipped-at-zero": (history([50.0] * 7), 10.0, 0.8, (0.0, 5.0)),       # 50 + 6 x -40 < 0
    # 0.8 x 100 + 0.2 x 10 + 6 x 10 = 142 > 20 x 30 / 5 = 120: no more than the window holds
    "rise-is-clipped-at-the-window": (history([10.0] * 7, recent=[10.0, 100.0] + [10.0] * 5), 20.0, 0.8,
                                      (120.0, 5.0)),
    "polls-a-window-apart-are-the-window": (history([10.0], t0_s=70.0), 20.0, 0.8, (20.0, 30.0)),
    "unknown-rate-is-unknown": (history([10.0] * 7), None, 0.8, (None, 30.0)),
}


@pytest.mark.parametrize("samples,rate,memory,expected", RECENT_CASES.values(), ids=RECENT_CASES.keys())
def test_recent_rate_reconstructs_the_last_interval(samples, rate, memory, expected):
    got = recent_rate(samples, 100.0, rate, 30.0, memory)
    assert got == (pytest.approx(expected[0]) if expected[0] is not None else None, expected[1])


PANIC_CASES = {
    # id: (earlier windowed rates, rate now, rate window s, expected replicas, kind); 3 replicas, 10 req/s each
    # at 70%: ceil(20 / 7) = 3 holds 20 req/s. The panic window (6 s) is 5 s of the last interval and 1 s of the
    # one before; panic at 2 x 3 ready replicas.
    "burst-below-panic-does-not-count": ([20.0] * 11, 30.0, 5, 3, "tolerance"),   # (5 x 30 + 20) / 6 / 7 = 4.05 < 6
    "burst-over-panic-counts": ([20.0] * 11, 50.0, 5, 7, "panic"),                 # (5 x 50 + 20) / 6 / 7 = 6.43 >= 6
    # a 30 s window: 20 -> 80 req/s shows as 30 on the first poll; the recent rate is 80: (5 x 80 + 20) / 6 / 7 = 10
    "step-through-a-30s-window": ([20.0] * 11, 30.0, 30, 10, "panic"),
}


@pytest.mark.parametrize("earlier,rate,window_s,want,kind", PANIC_CASES.values(), ids=PANIC_CASES.keys())
def test_the_short_window_counts_in_panic_only_and_sees_steps_at_their_size(earlier, rate, window_s, want, kind):
    cfg = slo_config(rate_window_s=window_s, max_replicas=20)
    state = State(started_s=0.0, policy=SloState(samples=history(earlier, t0_s=45.0), traffic_since_s=0.0))
    d = decide(observed(3, rate_rps=rate, p95_ms=100.0), state, cfg, 100.0)
    assert (d.replicas, d.kind) == (want, kind), d.reason


RISE_CASES = {
    # id: (earlier windowed rates, rate now, rise window s, current, expected replicas, kind); 10 req/s per replica
    # at 70%, polls every 5 s, a 5 s rate window (so the recent rate is the windowed one), panic at 2 x current.
    # 20 -> 40 req/s: the rise window's mean (5 x 40 + 15 x 20) / 20 = 25 -> 3.57 replicas; the stable mean
    # (11 x 20 + 40) / 12 = 21.7 -> 3.10, within the tolerance of 3; the panic window's 5.24 < 6
    "step-short-of-panic-counts-at-once": ([20.0] * 11, 40.0, 20, 3, 4, "rise"),
    "without-it-the-step-waits": ([20.0] * 11, 40.0, 0, 3, 3, "tolerance"),
    # three polls into the step the window holds only it: 40 / 7 = 5.71; the stable mean (8 x 20 + 4 x 40) / 12 -> 3.81
    "a-held-step-counts-at-its-size": ([20.0] * 8 + [40.0] * 3, 40.0, 20, 3, 6, "rise"),
    "the-stable-mean-alone-is-slower": ([20.0] * 8 + [40.0] * 3, 40.0, 0, 3, 4, "load"),
    # the policy keeps one stable window (60 s) of rates: a longer rise window is that window, as valid config
    "a-window-past-the-stable-one-is-the-stable-one": ([20.0] * 8 + [40.0] * 3, 40.0, 90, 3, 4, "load"),
    # 20 -> 5 req/s: the stable mean (11 x 20 + 5) / 12 -> 2.68 asks for 3, the rise window's 0.89 counts for nothing
    "a-drop-scales-down-by-the-stable-mean": ([20.0] * 11, 5.0, 20, 4, 3, "load"),
    "the-same-drop-without-it": ([20.0] * 11, 5.0, 0, 4, 3, "load"),
}


@pytest.mark.parametrize("earlier,rate,window_s,current,want,kind", RISE_CASES.values(), ids=RISE_CASES.keys())
def test_a_rise_counts_for_scale_up_within_the_rise_window(earlier, rate, window_s, current, want, kind):
    cfg = slo_config(rise_window_s=window_s, max_replicas=20, scale_down_stabilization_s=0)
    state = State(started_s=0.0, policy=SloState(samples=history(earlier, t0_s=45.0), traffic_since_s=0.0))
    d = decide(observed(current, rate_rps=rate, p95_ms=100.0), state, cfg, 100.0)
    assert (d.replicas, d.kind) == (want, kind), d.reason
    assert (d.details["need_rise"] > 0) == (window_s > 0)


SCALE_UP_CASES = {
    # id: (current, rate req/s, SCALE_UP_MAX_RATIO, expected); demand = rate / 7 (10 req/s per replica at 70%)
    "x4-caps-a-cold-start": (1, 84.0, 4, 4),          # demand 12
    "under-the-cap-goes-at-once": (2, 35.0, 4, 5),    # demand 5 <= 8
    "x4-from-ten": (10, 700.0, 4, 40),                # demand 100
    "ratio-2-doubles": (2, 70.0, 2, 4),               # demand 10
    "ratio-1-adds-one": (3, 70.0, 1, 4),              # at least +1
}


@pytest.mark.parametrize("current,rate,ratio,want", SCALE_UP_CASES.values(), ids=SCALE_UP_CASES.keys())
def test_scale_up_is_capped_at_a_multiple_of_the_current_count(current, rate, ratio, want):
    cfg = slo_config(max_replicas=100, scale_up_max_ratio=ratio)
    state = State(started_s=0.0, policy=SloState(samples=history([rate] * 6, t0_s=70.0), traffic_since_s=0.0))
    d = decide(observed(current, rate_rps=rate, p95_ms=100.0), state, cfg, 100.0)
    assert d.replicas == want, d.reason


SCALE_DOWN_CASES = {
    # id: (current, SCALE_DOWN_MAX_FRACTION, expected); demand 1 (7 req/s), nothing higher remembered
    "a-fifth-of-fifty": (50, 0.2, 40),
    "at-least-one": (4, 0.2, 3),                       # floor(0.8) = 0
    "fraction-rounds-down": (14, 0.2, 12),             # floor(2.8)
    "zero-is-one-replica": (50, 0.0, 49),
    "whole-goes-to-the-demand": (50, 1.0, 1),
}


@pytest.mark.parametrize("current,fraction,want", SCALE_DOWN_CASES.values(), ids=SCALE_DOWN_CASES.keys())
def test_a_scale_down_step_removes_a_fraction_of_the_replicas(current, fraction, want):
    cfg = slo_config(max_replicas=100, scale_down_max_fraction=fraction)
    state = State(started_s=0.0, policy=SloState(samples=history([7.0] * 6, t0_s=970.0), traffic_since_s=0.0))
    d = decide(observed(current, rate_rps=7.0, p95_ms=100.0), state, cfg, 1000.0)
    assert (d.replicas, d.kind) == (want, "load"), d.reason


REMEMBERED_CASES = {
    # id: (rate at t=100, rate at t=105, expected kind and replicas at 105); 10 replicas, 7 req/s each at 70%.
    # 63 req/s: demand 9.0, within TOLERANCE of 10, held - and remembered as 9. At 105 the stable window's
    # mean is 56 req/s (demand 8), so the count goes to max(10 - 2, 9) = 9.
    "tolerance-hold-remembers-the-demand": (63.0, 49.0, ("load", 9)),
    # 73.5 req/s: demand 10.5, held, remembered as 11 >= 10: 61.25 req/s (demand 8.75) holds.
    "demand-above-the-count-holds": (73.5, 49.0, ("stabilizing", 10)),
}


@pytest.mark.parametrize("first,second,expected", REMEMBERED_CASES.values(), ids=REMEMBERED_CASES.keys())
def test_the_stabilization_remembers_the_demand_not_the_held_count(first, second, expected):
    cfg = slo_config(max_replicas=20)
    d1 = decide(observed(10, rate_rps=first, p95_ms=100.0), State(started_s=0.0), cfg, 100.0)
    assert (d1.replicas, d1.kind) == (10, "tolerance"), d1.reason
    d2 = decide(observed(10, rate_rps=second, p95_ms=100.0), d1.state, cfg, 105.0)
    assert (d2.kind, d2.replicas) == expected, d2.reason


STABILIZATION_DEFAULT_CASES = {
    # id: (age s of the last recommendation of 10 replicas, expected replicas); defaults: 30 s, a fifth per step
    "inside-the-window-holds": (25.0, 10),
    "outside-the-window-releases": (35.0, 8),   # demand 1; 10 - floor(0.2 x 10)
}


@pytest.mark.parametrize("age_s,want", STABILIZATION_DEFAULT_CASES.values(), ids=STABILIZATION_DEFAULT_CASES.keys())
def test_the_default_stabilization_window_is_half_a_minute(age_s, want):
    cfg = Config(policy="slo", scaler="dry-run", min_replicas=1, max_replicas=10, capacity_rps_per_replica=10,
                 target_inflight_per_replica=0, forecast_horizon_s=0).validate()
    state = State(started_s=0.0, policy=SloState(recommendations=((1000.0 - age_s, 10),)))
    d = decide(observed(10, rate_rps=5.0, p95_ms=100.0), state, cfg, 1000.0)
    assert d.replicas == want, d.reason


# --- missing data, shared by all policies -----------------------------------------------------------

NO_DATA_CASES = {
    "prometheus-down": (observed(3, problem=REFUSED), "hold: no-data (prometheus: connection refused)"),
    "stale": (observed(3, problem=PollProblem(Unusable.STALE, "90")), "hold: no-data (stale: newest sample 90s old)"),
    "nan-rate-and-inflight": (observed(3, rate_rps=None, inflight=None, p95_ms=None),
                              "hold: no-data (no request rate or in-flight data)"),
}


@pytest.mark.parametrize("obs,reason", NO_DATA_CASES.values(), ids=NO_DATA_CASES.keys())
@pytest.mark.parametrize("policy", ["slo", "hpa"])
def test_no_data_holds_the_current_count(obs, reason, policy):
    cfg = slo_config(policy=policy)
    d = decide(obs, State(started_s=0.0), cfg, 10.0)
    assert d.replicas == 3 and d.kind == "no-data"
    if policy == "slo" or obs.metrics.problem:
        assert d.reason == reason


def test_fallback_after_consecutive_failures_then_recovery_resets():
    cfg = slo_config(fallback_after_failures=3, fallback_replicas=4)
    bad = observed(2, problem=TIMEOUT)
    state = State()
    kinds = []
    for i in range(4):
        d = decide(bad, state, cfg, float(i * 5))
        state = d.state
        kinds.append((d.replicas, d.kind))
    assert kinds == [(2, "no-data"), (2, "no-data"), (4, "fallback"), (4, "fallback")]
    good = observed(4, rate_rps=20.0, p95_ms=100.0, inflight=2.0)
    assert decide(good, state, cfg, 25.0).state.failures == 0


@pytest.mark.parametrize("current,expected", [(1, 2), (2, 2), (5, 2)], ids=["up", "hold", "down"])
def test_static_holds_min_replicas(current, expected):
    cfg = slo_config(policy="static", min_replicas=2)
    d = decide(observed(current, rate_rps=100.0), State(), cfg, 0.0)
    assert d.replicas == expected and d.kind == "static"


def test_policy_does_not_mutate_its_inputs():
    cfg = slo_config()
    state = State(started_s=0.0)
    obs = observed(2, rate_rps=30.0, p95_ms=100.0, inflight=2.0)
    first = decide(obs, state, cfg, 100.0)
    second = decide(obs, state, cfg, 100.0)
    assert state == State(started_s=0.0)
    assert first == second


# --- the registry: every policy alike -----------------------------------------------------------------

def test_the_configurable_policies_are_the_registered_ones():
    assert POLICY_NAMES == tuple(POLICIES)
    for name in POLICY_NAMES:
        assert Config(policy=name, scaler="dry-run").validate().policy == name
    with pytest.raises(ConfigError, match="POLICY"):
        Config(policy="nope", scaler="dry-run").validate()


@pytest.mark.parametrize("name", POLICIES)
def test_policy_state_is_a_frozen_dataclass_that_starts_empty(name):
    state_type = POLICIES[name].state_type
    assert dataclasses.is_dataclass(state_type) and state_type.__dataclass_params__.frozen
    fresh = state_type()  # every field has a default: a policy starts with no past
    for f in dataclasses.fields(fresh):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fresh, f.name, getattr(fresh, f.name))


@pytest.mark.parametrize("name", POLICIES)
def test_policy_needs_name_metrics_fields(name):
    spec = POLICIES[name]
    fields = {f.name for f in dataclasses.fields(Metrics)}
    assert set(spec.needs) <= fields and bool(spec.needs) == bool(spec.no_data)


STATE_TYPE_CASES = {
    # id: (policy, observation, state handed in)
    "slo-first-poll": ("slo", observed(2, rate_rps=20.0, p95_ms=100.0), State()),
    "slo-no-data": ("slo", observed(2, problem=TIMEOUT), State()),
    "hpa-first-poll": ("hpa", observed(2, cpu_cores=1.6), State()),
    "hpa-no-cpu": ("hpa", observed(2, rate_rps=20.0), State()),
    "hpa-disabled-at-zero": ("hpa", observed(0, cpu_cores=1.0), State()),
    "static": ("static", observed(1), State()),
    "hpa-after-an-slo-state": ("hpa", observed(2, cpu_cores=1.6),
                               State(started_s=0.0, policy=SloState(capacity_rps=3.0))),
    "slo-after-an-hpa-state": ("slo", observed(2, rate_rps=20.0, p95_ms=100.0),
                               State(started_s=0.0, policy=HpaState(recommendations=((0.0, 9),)))),
}


@pytest.mark.parametrize("policy,obs,state", STATE_TYPE_CASES.values(), ids=STATE_TYPE_CASES.keys())
def test_a_decision_carries_its_policys_own_state(policy, obs, state):
    cfg = slo_config(policy=policy)
    d = decide(obs, state, cfg, 100.0)
    assert type(d.state.policy) is POLICIES[policy].state_type
    # Another policy's memory means nothing to this one: it decides as if it had none.
    assert d == decide(obs, dataclasses.replace(state, policy=None), cfg, 100.0)


NEEDS_CASES = {
    # id: (policy, observation, no data?)
    "slo-rate-alone-is-enough": ("slo", observed(2, rate_rps=20.0), False),
    "slo-inflight-alone-is-enough": ("slo", observed(2, inflight=1.0), False),
    "slo-cpu-alone-is-no-data": ("slo", observed(2, cpu_cores=1.0, p95_ms=100.0), True),
    "hpa-cpu-is-enough": ("hpa", observed(2, cpu_cores=1.0), False),
    "hpa-rate-alone-is-no-data": ("hpa", observed(2, rate_rps=20.0, inflight=1.0), True),
    "static-needs-nothing": ("static", observed(2), False),
    "static-still-holds-on-a-problem": ("static", observed(2, rate_rps=1.0, problem=PollProblem(Unusable.STALE, "40")),
                                        True),
}


@pytest.mark.parametrize("policy,obs,no_data", NEEDS_CASES.values(), ids=NEEDS_CASES.keys())
def test_what_a_policy_needs_decides_what_counts_as_no_data(policy, obs, no_data):
    d = decide(obs, State(started_s=0.0), slo_config(policy=policy), 100.0)
    assert (d.kind == "no-data") == no_data
    if no_data and not obs.metrics.problem:
        assert d.reason == f"hold: no-data ({POLICIES[policy].no_data})"


# --- hpa policy: examples computed by hand from the upstream formulas ---------------------------------

def hpa_config(**overrides) -> Config:
    base = dict(policy="hpa", scaler="dry-run", min_replicas=1, max_replicas=10, hpa_target_cpu=0.5)
    base.update(overrides)
    return Config(**base).validate()


HPA_CALC_CASES = {
    # (current, ready, unready, cpu cores, target) -> replicas
    "80pct-of-50-scales-to-ceil(1.6x2)": ((2, 2, 0, 1.6, 0.5), 4),
    "52pct-within-tolerance": ((2, 2, 0, 1.04, 0.5), 2),
    "44pct-within-tolerance": ((2, 2, 0, 0.88, 0.5), 2),
    "30pct-scales-down-ceil(0.6x4)": ((4, 4, 0, 1.2, 0.5), 3),
    "54.97pct-truncated-to-54": ((3, 3, 0, 1.649, 0.5), 3),                  # ratio 1.08: hold
    "55pct-is-just-outside-tolerance": ((3, 3, 0, 1.65, 0.5), 4),            # float64 1.1 - 1 > 0.1, as upstream
    "unready-pods-count-0pct-on-scale-up": ((4, 2, 2, 3.0, 0.5), 6),          # 150% -> 75% over 4 pods
    "unready-rebalance-flips-direction-holds": ((4, 2, 2, 1.8, 0.5), 4),      # 90% -> 45%: would flip
    "95pct-of-90-within-tolerance": ((2, 2, 0, 1.9, 0.9), 2),                # ratio 1.056
    "120pct-of-90-scales-up": ((2, 2, 0, 2.4, 0.9), 3),                      # ceil(1.333 x 2)
}


HPA_MISSING_CASES = {
    # (current, ready, missing, cpu cores of the ready pods) at target 50% -> replicas
    "scale-down-counts-missing-at-100pct": ((4, 3, 1, 0.3), 3),   # 10% -> 1300m / 4 pods = 32%: ceil(0.64 x 4)
    "scale-down-flipped-by-missing-holds": ((4, 2, 2, 0.4), 4),   # 20% -> 2400m / 4 pods = 60%: up, flips
    "scale-up-counts-missing-at-0pct": ((4, 2, 2, 3.0), 6),       # 150% -> 3000/4000 = 75% -> ceil(1.5 x 4)
    "scale-up-flipped-by-missing-holds": ((4, 2, 2, 1.2), 4),     # 60% -> 30%: direction flips
}


@pytest.mark.parametrize("args,expected", HPA_CALC_CASES.values(), ids=HPA_CALC_CASES.keys())
def test_hpa_replica_calculation(args, expected):
    current, ready, unready, cpu, target = args
    assert calculate_replicas(current, ready, unready, cpu, target, 0.1) == expected


@pytest.mark.parametrize("args,expected", HPA_MISSING_CASES.values(), ids=HPA_MISSING_CASES.keys())
def test_hpa_missing_metrics_rules(args, expected):
    current, ready, missing, cpu = args
    assert calculate_replicas(current, ready, 0, cpu, 0.5, 0.1, missing=missing) == expected


def test_hpa_utilization_is_whole_percent_truncated():
    from autoscaler.hpa import utilization_ratio
    assert utilization_ratio(1649, 3, 50) == (54 / 50, 54)


def test_hpa_scale_up_rate_limit_is_max_of_4_pods_and_100pct_per_15s():
    assert scale_up_limit(1, (), (), 0.0, 15.0) == 5      # max(1 + 4, 2)
    assert scale_up_limit(10, (), (), 0.0, 15.0) == 20    # max(14, 20)
    # 4 pods were added 5 s ago: the period started at 1 replica, so 5 is still the limit.
    assert scale_up_limit(5, ((-5.0, 4),), (), 0.0, 15.0) == 5


def hpa_obs(current: int, cpu: float, ready: int | None = None) -> Observation:
    return observed(current, ready, cpu_cores=cpu)


def test_hpa_burst_is_rate_limited_then_continues_next_period():
    cfg = hpa_config()
    d1 = decide(hpa_obs(1, 1.0), State(), cfg, 0.0)   # 100% of 50% -> 2
    assert (d1.replicas, d1.kind) == (2, "cpu")
    d2 = decide(hpa_obs(2, 10.0), d1.state, cfg, 5.0)  # 500% -> 20, period start 1 -> limit 5
    assert d2.replicas == 5 and "rate limit" in d2.reason
    d3 = decide(hpa_obs(5, 25.0), d2.state, cfg, 10.0)  # still the same 15 s period: 5
    assert d3.replicas == 5
    d4 = decide(hpa_obs(5, 25.0), d3.state, cfg, 16.0)  # +1 at t=0 left the period: starts at 2 -> max(6, 4)
    assert d4.replicas == 6
    d5 = decide(hpa_obs(6, 30.0), d4.state, cfg, 31.5)  # all events left: starts at 6 -> max(10, 12), MAX 10
    assert d5.replicas == 10


def test_hpa_scale_down_waits_for_the_300s_stabilization_window():
    cfg = hpa_config()
    state = decide(hpa_obs(4, 2.0), State(), cfg, 0.0).state      # 50%: recommendation 4
    d = decide(hpa_obs(4, 0.2), state, cfg, 60.0)                  # 5%: proposes 1, window max is 4
    assert d.replicas == 4 and d.kind == "stabilizing"
    d = decide(hpa_obs(4, 0.2), d.state, cfg, 299.0)
    assert d.replicas == 4
    d = decide(hpa_obs(4, 0.2), d.state, cfg, 361.0)               # the 4 and the 60 s samples left the window
    assert d.replicas == 1 and d.kind == "cpu"


@pytest.mark.parametrize("current,expected", [(12, 10), (0, 0)], ids=["above-max", "zero-disables"])
def test_hpa_bounds_and_disabled(current, expected):
    d = decide(hpa_obs(current, 1.0), State(), hpa_config(), 0.0)
    assert d.replicas == expected


def test_hpa_missing_cpu_holds():
    d = decide(observed(3, rate_rps=10.0, cpu_cores=None), State(), hpa_config(), 0.0)
    assert (d.replicas, d.kind) == (3, "no-data")


def test_hpa_needs_a_ready_pod():
    d = decide(hpa_obs(2, 1.0, ready=0), State(), hpa_config(), 0.0)
    assert (d.replicas, d.kind) == (2, "no-data")


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
