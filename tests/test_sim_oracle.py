"""The oracle: replicas asked for one start-up ahead of need, released only when the future allows."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from autoscaler.config import load_config
from loadtester.schedule import build_schedule
from sim import oracle
from sim.profile import default_profile
from sim.run import RunSettings, run_policy

CAP = 50.0
# Pods start in exactly 3 + 2 s.
PROFILE = replace(default_profile(), startup_s=3.0, startup_sigma=0.0, pod_overhead_s=2.0, capacity_within_slo_rps=CAP)


def step(low, high, at_s, length_s):
    return np.array([low] * at_s + [high] * (length_s - at_s), dtype=float)


@pytest.mark.parametrize("rates, expected", [
    (step(20, 180, 30, 60), [1] * 25 + [4] * 35),       # up: asked for 5 s (one start-up) before the step
    (step(180, 20, 30, 60), [4] * 30 + [1] * 30),       # down: released at the step, nothing needs it later
    (np.array([20, 20, 180, 20, 20, 20, 20, 20, 20, 20], float), [4] * 3 + [1] * 7),  # a blip: held until it
], ids=["step-up", "step-down", "one-second-blip"])
def test_plan_leads_by_the_start_up_and_follows_the_need_down(rates, expected):
    assert oracle.plan(rates, CAP, 5.0, 1, 10).tolist() == expected


@pytest.mark.parametrize("rate, replicas", [(10, 1), (50, 1), (51, 2), (149, 3), (1000, 8)],
                         ids=["light", "exactly-one", "just-over-one", "three", "capped-at-max"])
def test_never_more_than_needed_on_a_flat_trace(rate, replicas):
    assert set(oracle.plan(np.full(40, float(rate)), CAP, 5.0, 1, 8).tolist()) == {replicas}


def test_a_release_waits_while_the_need_returns_within_a_start_up():
    rates = np.array([180] * 10 + [20] * 4 + [180] * 10 + [20] * 10, dtype=float)
    desired = oracle.plan(rates, CAP, 5.0, 1, 10)
    assert desired[:24].min() == 4                       # a 4 s dip is shorter than a start-up: kept
    assert desired[24:].tolist() == [1] * 10


def test_on_a_step_trace_the_replicas_are_ready_at_the_step_and_the_slo_is_met():
    rates = step(20, 150, 60, 150)
    schedule = build_schedule(rates, arrivals="uniform")
    config = replace(load_config([], {}), slo_p95_ms=PROFILE.slo_ms, max_replicas=8).validate()
    result = run_policy("oracle", schedule, RunSettings(profile=PROFILE, config=config))
    need = math.ceil(150 / CAP)
    ready_at = {t: v for t, v in result.ready_timeline}
    first_full = min(t for t, v in result.ready_timeline if v >= need)
    assert first_full == pytest.approx(60.0 - 5.0 + 5.0, abs=1.0)   # asked at 55 s, ready 5 s later
    assert max(ready_at.values()) == need                            # never more than the step needs
    # Random routing at 150 of 3 x 50 req/s bunches a replica's arrivals now and then past what its queue
    # admits (a forward's end within MAX_QUEUE_WAIT_MS): a handful of 503s, no window missed.
    assert result.row["failed"] <= 0.001 * result.row["requests"]
    assert result.row["windows_in_slo"] == 1.0
    # The cost bound: one replica for the first minute, `need` for the rest, plus the early start.
    assert result.row["replica_seconds"] == pytest.approx(60 * 1 + 90 * need, abs=5)


# The reactive planner: what it asks for during each second, from what it counted lag seconds before.
@pytest.mark.parametrize("rates, headroom, lag_s, mean_s, hold_s, expected", [
    (step(20, 180, 5, 12), 1.0, 3, 1, 0, [1] * 8 + [4] * 4),           # the step seen 3 s late
    (step(20, 180, 5, 12), 1.0, 0, 1, 0, [1] * 5 + [4] * 7),           # no lag: at the step, not before
    (step(180, 20, 5, 12), 1.0, 0, 1, 3, [4] * 8 + [1] * 4),           # down: held 3 s after the fall
    (np.full(8, 100.0), 1.5, 2, 1, 0, [3] * 8),                        # headroom: 150 planned of 100
    (step(20, 180, 4, 10), 1.0, 0, 2, 0, [1] * 4 + [2] + [4] * 5),     # a 2 s mean: (20 + 180) / 2 first
    (np.full(6, 1000.0), 1.0, 0, 1, 0, [8] * 6),                       # capped at MAX_REPLICAS
    (np.zeros(0), 1.0, 5, 5, 30, []),                                  # nothing to plan
], ids=["seen-late", "no-lag", "held-after-a-fall", "headroom", "mean-over-two-seconds", "capped", "empty"])
def test_lagged_plan_reacts_to_what_it_counted_lag_seconds_before(rates, headroom, lag_s, mean_s, hold_s, expected):
    assert oracle.lagged_plan(rates, CAP, headroom, lag_s, mean_s, hold_s, 1, 8).tolist() == expected


def test_lagged_plan_starts_with_what_the_first_seconds_need():
    rates = np.array([180.0] * 3 + [20.0] * 20)
    assert oracle.lagged_plan(rates, CAP, 1.0, 10, 3, 0, 1, 8)[:10].tolist() == [4] * 10


def test_a_planned_run_follows_its_plan_and_reports_under_its_name():
    rates = step(20, 150, 30, 60)
    schedule = build_schedule(rates, arrivals="uniform")
    config = replace(load_config([], {}), slo_p95_ms=PROFILE.slo_ms, max_replicas=8).validate()
    plan = oracle.lagged_plan(rates, CAP, 1.0, 5, 1, 0, 1, 8)
    result = run_policy("reactive x1", schedule, RunSettings(profile=PROFILE, config=config), planned=plan)
    ups = [d for d in result.decisions if d["direction"] == "up"]
    assert [(d["policy"], d["current"], d["desired"]) for d in ups] == [("reactive x1", 1, 3)]
    assert result.row["windows_in_slo"] < 1.0      # 5 s late and 5 s to start: the step's window misses
