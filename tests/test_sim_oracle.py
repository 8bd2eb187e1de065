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
    assert result.row["failed"] == 0
    assert result.row["windows_in_slo"] == 1.0
    # The cost bound: one replica for the first minute, `need` for the rest, plus the early start.
    assert result.row["replica_seconds"] == pytest.approx(60 * 1 + 90 * need, abs=5)
