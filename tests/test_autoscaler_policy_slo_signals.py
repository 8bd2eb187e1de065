"""The slo policy's signals and steps, as a pure function: capacity learning, in-flight against the rate,
the recent rate reconstructed from the window, the panic and rise windows, the scale-up cap and scale-down
step, and what the stabilization window remembers."""

from __future__ import annotations

import pytest

from autoscaler.config import Config
from autoscaler.policy import State, decide
from autoscaler.slo_signals import Sample, SloState, recent_rate
from tests.test_autoscaler_policy import first_slo_decision, observed, slo_config


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
    first_slo_decision(obs, overrides, want, kind, reason)


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
