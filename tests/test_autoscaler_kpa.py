"""The `kpa` policy against hand-computed cases of Knative's decider (pkg/autoscaler/scaling/autoscaler.go),
with its defaults: target 10 in flight per replica x 70% utilization = 7, stable window 60 s, panic window
6 s, panic at 200%, max scale-up rate 1000, max scale-down rate 2."""

from __future__ import annotations

import pytest

from autoscaler.config import Config, ConfigError
from autoscaler.kpa import KpaState
from autoscaler.policy import State, decide
from tests.test_autoscaler_policy import observed


def kpa_config(**overrides) -> Config:
    base = dict(policy="kpa", scaler="dry-run", min_replicas=1, max_replicas=100, target_inflight_per_replica=10,
                capacity_rps_per_replica=10, kpa_target_utilization=0.7)
    base.update(overrides)
    return Config(**base).validate()


STARTED = State(started_s=0.0, policy=KpaState(started=True))

SINGLE = {
    # id: (config overrides, state, observation, replicas, kind, reason prefix)
    # ceil(20 / 7) = 3 for stable and panic; 3 / 1 ready >= 200%: panic begins.
    "first-burst-panics": ({}, State(), observed(1, inflight=20.0), 3, "panic", "scale-up: panic: stable 20.0"),
    # 3 / 2 ready = 150% < 200%: stable mode.
    "below-the-threshold-is-stable": ({}, STARTED, observed(2, inflight=20.0), 3, "stable", "scale-up: stable"),
    # ceil(1 / 7) = 1, but at most halved per decision: floor(8 / 2) = 4.
    "max-scale-down-rate-halves": ({}, STARTED, observed(8, inflight=1.0), 4, "stable", "scale-down: stable"),
    # ceil(70 / 7) = 10, but at most ceil(1.5 x 2) = 3.
    "max-scale-up-rate-caps": ({"kpa_max_scale_up_rate": 1.5}, STARTED, observed(2, inflight=70.0), 3, "panic",
                               "scale-up: panic"),
    # Like a new Knative autoscaler: more than one ready pod and no history starts in panic at that count.
    "restart-with-pods-starts-in-panic": ({}, State(), observed(4, inflight=0.5), 4, "panic", "hold: panic"),
    # Requests per second against CAPACITY_RPS_PER_REPLICA: ceil(15 / 7) = 3.
    "rps-metric": ({"kpa_metric": "rps"}, STARTED, observed(2, rate_rps=15.0), 3, "stable", "scale-up: stable"),
    # Bounds apply last, like min-scale and max-scale.
    "max-replicas-bounds": ({"max_replicas": 4}, STARTED, observed(1, inflight=70.0), 4, "panic",
                            "scale-up: panic"),
    "its-metric-missing-holds": ({}, STARTED, observed(3, rate_rps=50.0), 3, "no-data",
                                 "hold: no-data (no in-flight data)"),
}


@pytest.mark.parametrize("overrides,state,obs,replicas,kind,reason", SINGLE.values(), ids=SINGLE.keys())
def test_single_decisions(overrides, state, obs, replicas, kind, reason):
    decision = decide(obs, state, kpa_config(**overrides), 10.0)
    assert (decision.replicas, decision.kind) == (replicas, kind), decision.reason
    assert decision.reason.startswith(reason), decision.reason


def test_bounded_decisions_say_from_what():
    decision = decide(observed(1, inflight=70.0), STARTED, kpa_config(max_replicas=4), 10.0)
    assert decision.reason.endswith("bounded from 10")


def test_no_scale_down_while_panicking_then_down_once_the_surge_is_stable():
    cfg = kpa_config()
    # t=0: 30 in flight on 1 pod -> ceil(30 / 7) = 5, panic.
    d0 = decide(observed(1, inflight=30.0), State(), cfg, 0.0)
    assert (d0.replicas, d0.kind) == (5, "panic")
    # t=2: 7 in flight; the panic window (6 s) averages 18.5 -> 3 pods, 3 / 5 < 200%: no new panic, but panic
    # began 2 s ago and lasts a stable window: no scale-down below the 5 it reached.
    d2 = decide(observed(5, inflight=7.0), d0.state, cfg, 2.0)
    assert (d2.replicas, d2.kind) == (5, "panic")
    # t=62: the last poll over the threshold is more than 60 s ago: stable again. ceil(7 / 7) = 1, at most
    # halved: floor(5 / 2) = 2.
    d62 = decide(observed(5, inflight=7.0), d2.state, cfg, 62.0)
    assert (d62.replicas, d62.kind) == (2, "stable")
    assert d62.state.policy.panic_since_s is None and d62.state.policy.max_panic_pods == 0


def test_the_stable_window_averages_its_polls():
    cfg = kpa_config()
    state = STARTED
    for t, inflight in ((0.0, 7.0), (20.0, 14.0), (40.0, 21.0)):
        decision = decide(observed(2, inflight=inflight), state, cfg, t)
        state = decision.state
    # Stable mean (7 + 14 + 21) / 3 = 14 -> 2 pods; the panic window (6 s) holds only 21 -> 3 pods, 150%.
    assert decision.details["stable"] == 14.0 and decision.details["panic"] == 21.0
    assert decision.replicas == 2


@pytest.mark.parametrize("overrides, message", [
    ({"target_inflight_per_replica": 0}, "TARGET_INFLIGHT_PER_REPLICA=0: the kpa policy with KPA_METRIC=concurrency"),
    ({"kpa_metric": "rps", "capacity_rps_per_replica": 0}, "CAPACITY_RPS_PER_REPLICA=0: the kpa policy"),
    ({"kpa_max_scale_down_rate": 1}, "KPA_MAX_SCALE_DOWN_RATE"),
    ({"kpa_panic_threshold": 1.0}, "KPA_PANIC_THRESHOLD"),
    ({"kpa_metric": "latency"}, "KPA_METRIC"),
], ids=["no-concurrency-target", "no-rps-target", "down-rate-not-above-1", "threshold-below-110pct", "unknown-metric"])
def test_bad_kpa_settings_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError) as info:
        kpa_config(**overrides)
    assert message in str(info.value)
