"""sim/attribution.py: where a run's replica-seconds above the oracle's and its missed windows come from."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sim.attribution import HEADROOM, HELD, UNDECIDED, Miss, attribute, per_second

START = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


def decision(t_s: float, current: int, desired: int, want: int | None = None) -> dict:
    iso = datetime.fromtimestamp(START + t_s, timezone.utc).isoformat().replace("+00:00", "Z")
    line = {"time": iso, "event": "decision", "current": current, "desired": desired}
    if want is not None:
        line["want"] = want
    return line


def window(start_s: float, meets: bool, requests: int = 100) -> dict:
    return {"start_s": start_s, "requests": requests, "meets_slo": meets}


@pytest.mark.parametrize("steps, duration_s, expected", [
    ([[0.0, 1.0], [2.4, 2.0]], 4, [1, 1, 2, 2]),      # a change before mid-second counts for that second
    ([[0.0, 1.0], [2.6, 2.0]], 4, [1, 1, 1, 2]),      # after it, from the next
    ([[0.0, 3.0]], 2.5, [3, 3, 3]),                   # a last partial second is sampled too
    ([], 2, [0, 0]),
], ids=["change-before-middle", "change-after-middle", "partial-last-second", "empty"])
def test_per_second_samples_a_step_series_at_each_seconds_middle(steps, duration_s, expected):
    assert per_second(steps, duration_s) == expected


@pytest.mark.parametrize("decisions, expected", [
    # 3 ready against the oracle's 1 for 20 s: 40 replica-seconds above it.
    ([decision(0, 3, 3, want=3)], {HEADROOM: 40.0, HELD: 0.0, UNDECIDED: 0.0}),   # wanted what it had
    ([decision(0, 3, 3, want=2)], {HEADROOM: 0.0, HELD: 40.0, UNDECIDED: 0.0}),   # wanted fewer, kept them
    ([decision(10, 3, 3, want=2)], {HEADROOM: 0.0, HELD: 20.0, UNDECIDED: 20.0}),  # nothing decided before 10 s
    ([decision(0, 3, 3)], {HEADROOM: 40.0, HELD: 0.0, UNDECIDED: 0.0}),           # no want: the desired count
], ids=["headroom", "held", "undecided-first", "desired-without-want"])
def test_replica_seconds_above_the_oracle_are_split_by_what_the_policy_wanted(decisions, expected):
    found = attribute([[0.0, 3.0]], [[0.0, 1.0]], decisions, [window(0, True), window(10, True)], 20.0, START, 10)
    assert found.excess_replica_s == expected
    assert found.misses == ()


def test_seconds_below_the_oracle_cost_nothing():
    found = attribute([[0.0, 1.0]], [[0.0, 3.0]], [decision(0, 1, 1, want=1)], [window(0, True)], 10.0, START, 10)
    assert sum(found.excess_replica_s.values()) == 0.0


@pytest.mark.parametrize("ready, oracle, decisions, max_replicas, expected", [
    # The oracle had 4 ready from 3 s; the policy asked at 6 s and had 4 ready at 12 s.
    ([[0.0, 1.0], [12.0, 4.0]], [[0.0, 1.0], [3.0, 4.0]], [decision(6, 1, 4)], 10,
     Miss(0.0, short_s=7, short_replicas=3, onset_s=3.0, asked_s=6.0, caught_up_s=12.0)),
    # Asked just before the shortfall began (its replicas still starting): counted from the onset, not before.
    ([[0.0, 1.0], [12.0, 4.0]], [[0.0, 1.0], [3.0, 4.0]], [decision(2.8, 1, 4)], 10,
     Miss(0.0, short_s=7, short_replicas=3, onset_s=3.0, asked_s=3.0, caught_up_s=12.0)),
    # A scale-up after the policy was level again answered something else: none for this shortfall.
    ([[0.0, 1.0], [8.0, 4.0]], [[0.0, 1.0], [3.0, 4.0]], [decision(15, 4, 5)], 10,
     Miss(0.0, short_s=5, short_replicas=3, onset_s=3.0, asked_s=None, caught_up_s=8.0)),
    # Never short: the window missed at the oracle's count.
    ([[0.0, 4.0]], [[0.0, 4.0]], [], 10, Miss(0.0)),
    # Both at MAX_REPLICAS throughout: the cap's miss, not the policy's.
    ([[0.0, 2.0]], [[0.0, 2.0]], [], 2, Miss(0.0, at_max=True)),
    # Short, no scale-up asked before the replay ended.
    ([[0.0, 1.0]], [[0.0, 1.0], [3.0, 4.0]], [], 10,
     Miss(0.0, short_s=7, short_replicas=3, onset_s=3.0)),
], ids=["late", "asked-just-before", "asked-after-level", "not-short", "at-max-as-the-oracle", "never-asked"])
def test_a_missed_window_says_whether_and_how_the_policy_was_short(ready, oracle, decisions, max_replicas, expected):
    found = attribute(ready, oracle, decisions, [window(0, False), window(10, True)], 20.0, START, max_replicas)
    assert found.misses == (expected,)


@pytest.mark.parametrize("miss, text", [
    (Miss(40.0), "40 s: not short of replicas (missed at the oracle's count or above)"),
    (Miss(0.0, 7, 3, 3.0, 6.0, 12.0), "0 s: short of up to 3 replica(s) for 7 s of the window, scale-up asked "
                                      "3 s after the shortfall began, level with the oracle 6 s after asking"),
    (Miss(0.0, at_max=True), "0 s: at MAX_REPLICAS, as the oracle (the cap, not the policy)"),
    (Miss(0.0, 7, 3, 3.0), "0 s: short of up to 3 replica(s) for 7 s of the window, no scale-up asked"),
], ids=["not-short", "late", "at-max", "never-asked"])
def test_each_miss_reads_as_one_line(miss, text):
    assert miss.text() == text


def test_windows_without_requests_are_not_misses():
    found = attribute([[0.0, 1.0]], [[0.0, 1.0]], [], [window(0, False, requests=0)], 10.0, START, 10)
    assert found.misses == ()


def test_the_lines_give_shares_of_the_oracles_replica_seconds_when_it_has_any():
    found = attribute([[0.0, 3.0]], [[0.0, 1.0]], [decision(0, 3, 3, want=2)], [window(0, True)], 10.0, START, 10)
    assert found.lines(10.0) == ["replica-s above the oracle: 20: held 20 (200.0% of the oracle's)"]
    assert found.lines(0.0) == ["replica-s above the oracle: 20: held 20"]


def test_decisions_at_the_same_second_keep_their_order():
    same = [decision(0, 3, 3, want=3), decision(0, 3, 3, want=2)]   # the later one is in force
    found = attribute([[0.0, 3.0]], [[0.0, 1.0]], same, [window(0, True)], 10.0, START, 10)
    assert found.excess_replica_s[HELD] == 20.0
