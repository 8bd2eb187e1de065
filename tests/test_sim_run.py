"""One simulated run: the real autoscaler loop and decide() driving the simulated cluster."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import autoscaler.loop
from autoscaler.config import load_config
from loadtester.schedule import build_schedule
from sim.cluster import ClusterSettings
from sim.profile import default_profile
from planning.runs import RunNameError, check_run_name
from sim.run import START_FIRST_NEED, START_MIN, RunSettings, policy_config, run_policy

PROFILE = replace(default_profile(), startup_s=3.0, startup_sigma=0.0, pod_overhead_s=2.0)


def settings(**overrides) -> RunSettings:
    config = replace(load_config([], {}), slo_p95_ms=PROFILE.slo_ms,
                     capacity_rps_per_replica=PROFILE.capacity_within_slo_rps,
                     target_inflight_per_replica=PROFILE.target_inflight_per_replica, max_replicas=6, **overrides)
    return RunSettings(profile=PROFILE, config=config.validate())


def schedule_of(*phases, arrivals="poisson"):
    rates = np.concatenate([np.full(seconds, float(rate)) for rate, seconds in phases])
    return build_schedule(rates, seed=1, arrivals=arrivals)


@pytest.mark.parametrize("name, meets", [("static-1", False), ("static-4", True)], ids=["one-replica", "four"])
def test_static_replicas_on_an_overload_trace(name, meets):
    # 150 req/s for two minutes: 2.5 replicas' saturation.
    result = run_policy(name, schedule_of((150, 120)), settings())
    assert result.row["scale_events"] == 0
    if meets:
        assert result.row["failed"] == 0 and result.row["windows_in_slo"] == 1.0
        assert result.row["replica_seconds"] == pytest.approx(4 * 120)
    else:
        assert result.errors["rejected_503"] > 0 and result.row["windows_in_slo"] == 0.0
        assert result.row["replica_seconds"] == pytest.approx(120)


def test_the_slo_policy_scales_up_under_a_step_and_down_after_it():
    config = settings().config
    result = run_policy("slo", schedule_of((20, 60), (200, 120), (20, 420)), settings())
    need = math.ceil(200 / (config.capacity_rps_per_replica * config.target_utilization))
    ready = np.array(result.ready_timeline)
    during = ready[(ready[:, 0] > 60) & (ready[:, 0] < 180), 1]
    assert during.max() >= need
    assert result.ready_timeline[-1][1] < during.max()          # and back down in the quiet tail
    ups = [e for e in result.events if e["direction"] == "up"]
    downs = [e for e in result.events if e["direction"] == "down"]
    assert ups and 60 <= ups[0]["t_s"] <= 80
    # While the step lasts, a scale-down only gives back what panic bought beyond the need.
    assert downs and all(e["to"] >= need for e in downs if e["t_s"] <= 180)
    assert any(e["t_s"] > 180 for e in downs)
    assert result.decisions[0]["policy"] == "slo"


def test_every_poll_goes_through_the_real_decide(monkeypatch):
    calls = []
    real = autoscaler.loop.decide

    def spy(obs, state, config, now_s):
        calls.append((now_s, obs))
        return real(obs, state, config, now_s)

    monkeypatch.setattr(autoscaler.loop, "decide", spy)
    run_settings = settings()
    result = run_policy("hpa-50", schedule_of((100, 60)), run_settings)
    poll_s = run_settings.config.poll_interval_s
    polls = [poll_s * k for k in range(round(60 / poll_s) + 1)]    # every POLL_INTERVAL_S over 60 s
    assert [t for t, _ in calls] == polls
    assert len(result.decisions) == len(polls)
    # What Prometheus showed it: the emulated rate of the simulated requests.
    assert calls[-1][1].metrics.rate_rps == pytest.approx(100, rel=0.15)
    assert calls[-1][1].metrics.cpu_cores > 0.5


@pytest.mark.parametrize("cheap, dear", [
    (("hpa-90", {}), ("hpa-50", {})),
    (("slo", {"target_utilization": 0.7}), ("slo", {"target_utilization": 0.35})),
], ids=["hpa-target-cpu", "slo-target-utilization"])
def test_a_policy_setting_changes_the_outcome(cheap, dear):
    schedule = schedule_of((20, 30), (150, 150))
    a = run_policy(cheap[0], schedule, settings(**cheap[1]))
    b = run_policy(dear[0], schedule, settings(**dear[1]))
    # A lower target plans more headroom, so it pays for more replicas.
    assert b.row["replica_seconds"] > a.row["replica_seconds"]


def test_the_same_seed_gives_the_same_run():
    a = run_policy("kpa", schedule_of((30, 30), (120, 60)), settings())
    b = run_policy("kpa", schedule_of((30, 30), (120, 60)), settings())
    assert a.row == b.row
    np.testing.assert_array_equal(a.latency_s, b.latency_s)


@pytest.mark.parametrize("name, policy, bounds", [
    ("static-min", "static", (1, 1)), ("static-max", "static", (6, 6)), ("hpa-90", "hpa", (1, 6)),
    ("kpa", "kpa", (1, 6)), ("slo", "slo", (1, 6)), ("static-3", "static", (3, 6)),
], ids=lambda v: str(v))
def test_policy_names_map_as_the_local_comparison_does(name, policy, bounds):
    config = policy_config(name, settings().config)
    assert (config.policy, config.min_replicas, config.max_replicas) == (policy, *bounds)
    if name == "hpa-90":
        assert config.hpa_target_cpu == 0.9


@pytest.mark.parametrize("name", ["hpa-0", "hpa-101", "static-0", "fast", "HPA-50"], ids=lambda v: v)
def test_unknown_policy_names(name):
    with pytest.raises(RunNameError, match="unknown policy"):
        check_run_name(name)


@pytest.mark.parametrize("routing", ["random", "least-outstanding"])
def test_a_run_ends_with_every_request_answered_whatever_the_routing(routing):
    run = replace(settings(), cluster=ClusterSettings(routing=routing))
    result = run_policy("static-3", schedule_of((120, 40)), run)
    assert result.row["failed"] == 0 and (result.replica >= 0).all()
    counts = np.bincount(result.replica, minlength=3)
    assert counts.min() > 0.25 * counts.sum()


@pytest.mark.parametrize("start, first", [(START_MIN, 1), (START_FIRST_NEED, 3)], ids=["min", "first-need"])
def test_every_run_starts_with_min_replicas_or_the_oracles_first_count(start, first):
    """A trace that starts at 150 req/s: a fresh deployment starts at MIN_REPLICAS, one already serving it
    with what the oracle starts with (150 / 54 within-SLO req/s per replica -> 3)."""
    profile = replace(default_profile(), capacity_within_slo_rps=54.0)
    schedule = build_schedule(np.full(20, 150.0), arrivals="uniform")
    config = replace(load_config([], {}), max_replicas=10).validate()
    settings = RunSettings(profile=profile, config=config, start=start)
    for name in ("slo", "hpa-50", "static-min"):
        expected = 1 if name == "static-min" else first   # static-min's maximum is MIN_REPLICAS
        assert run_policy(name, schedule, settings).ready_timeline[0] == [0.0, float(expected)]
    assert run_policy("oracle", schedule, settings).ready_timeline[0] == [0.0, 3.0]
