"""The decider, as a pure function: the rules shared by every policy (missing data, fallback, static), the
registry that ties them together, and the hpa policy against hand-computed HPA examples; also the helpers
the other policy test modules use (`observed`, `slo_config`, `hpa_config`)."""

from __future__ import annotations

import dataclasses
import pytest

from autoscaler.config import Config, ConfigError
from autoscaler.hpa import HpaState, calculate_replicas, scale_up_limit
from autoscaler.outcomes import PollProblem, Unusable
from autoscaler.policies import POLICIES
from autoscaler.policy_names import POLICY_NAMES
from autoscaler.policy import Decision, Metrics, Observation, State, decide
from autoscaler.scaling import ScalerStatus
from autoscaler.slo_signals import SloState

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


def first_slo_decision(obs: Observation, overrides: dict, want: int, kind: str, reason: str) -> Decision:
    """The slo policy's decision on `obs` from a fresh state, checked to be `want` replicas of `kind` for
    `reason` (how the reason starts)."""
    d = decide(obs, State(started_s=0.0), slo_config(**overrides), 100.0)
    assert (d.replicas, d.kind) == (want, kind)
    assert d.reason.startswith(reason), d.reason
    return d


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
