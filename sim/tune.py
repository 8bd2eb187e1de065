"""Tuning the autoscaler to a trace: which settings are searched, how a run is scored, which one wins.

The pure half of `python -m sim tune` (sim/tune_cli.py runs the simulator and prints): the replay is split
at a window boundary into a tuned part and a held-out part, each candidate setting is scored on the tuned
part only, and the winner, the baselines tuned the same way and the oracle are scored on the held-out part
only, so no scored second is seen twice.

Scoring. A run's score over a span is the 10 s windows of the span with requests, the windows among them
whose p95 (failed requests counted as too slow) kept the SLO (loadtester.stats.window_stats' verdict, the
comparison's `windows_in_slo`), and the replica-seconds of the span (comparison.events.integrate_steps over
the ready replicas, the comparison's `replica_seconds`). The first `warmup_s` of every replay are replayed
but not scored: a replay starts from MIN_REPLICAS, which a deployed autoscaler does not, and losing the
first windows to that would be the same for every candidate.

Choosing (`rank`): a candidate that keeps >= 99% of the windows (comparison.targets.TARGET_WINDOWS) with a
margin beats one that keeps it at the edge, which beats one that does not keep it; within the first two,
fewer replica-seconds win; among those that do not, the larger share of windows wins, then fewer
replica-seconds. Equal candidates keep the one tried first, so a tie keeps the starting point (the
deployment's current settings). When none keeps 99%, the one that kept most wins and the report says that
none kept 99% (sim/tune_report.py).

A margin (`has_margin`) is a window to spare beyond what 99% allows, or one step less headroom (the next
value of the first knob, the headroom, whose values run from most headroom to least) keeping 99% too. The
cheapest setting that just keeps 99% on one part of a trace keeps a little less on another: on the Twitter
hour's first half a utilisation target of 0.9 kept 167 of 168 windows (the one miss 99% allows) and 0.9 was
then the last value, so nothing showed that the edge was further; on the second half it kept 174 of 180 where
0.85 and 0.8, whose next steps had kept 99%, kept 176 (docs/benchmarks.md).

Searching (`coordinate_search`): from the current settings, one knob at a time over its values, keeping the
best, in the order of the knobs; again while a pass changed something, at most MAX_PASSES passes. A grid of
every combination would cost 9 x 4 x 4 x 3 = 432 runs; this tries at most 34 candidates, and a candidate at the
edge at most one more run at the next headroom (19 and 18 runs in all on the two real traces), which is what
keeps an hour's trace within five minutes of one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from comparison.events import integrate_steps
from comparison.targets import TARGET_ORACLE_RATIO, TARGET_WINDOWS
from loadtester.schedule import Schedule
from sim.results import WINDOW_S

MAX_PASSES = 2


@dataclass(frozen=True)
class Knob:
    """One autoscaler setting (a field of autoscaler.config.Config) and the values tried, in order."""

    name: str
    values: tuple[float, ...]
    why: str

    @property
    def key(self) -> str:
        return self.name.upper()  # Config's variables are its field names in capitals (named_after_fields)


# The slo policy's settings that trade replica-seconds against windows. The rest stay as deployed: the
# SLO and the bounds are the user's, the per-replica capacity is measured (and learned online), the windows
# of the signals (STABLE_WINDOW_S, PANIC_WINDOW_S, RATE_WINDOW_S) follow the scrape interval, and the
# scale-up step only bounds the first polls after a cold start (a burst is met within one step of 4x).
# The headroom knobs (each list's first) step by 0.05: at 0.1 a step is ~13% of the replica-seconds, and on the
# NASA day 0.7 kept every window of the tuned half where 0.8 did not, while 0.75 kept them all on both halves
# at 15% less than 0.7.
HEADROOM_STEP = 0.05


def _headroom(lo: float, hi: float) -> tuple[float, ...]:
    return tuple(round(lo + i * HEADROOM_STEP, 2) for i in range(round((hi - lo) / HEADROOM_STEP) + 1))


SLO_KNOBS = (
    Knob("target_utilization", _headroom(0.6, 1.0),
         "the headroom: the share of a replica's within-SLO capacity planned for; the largest lever on cost"),
    Knob("scale_down_stabilization_s", (30.0, 60.0, 90.0, 150.0),
         "how long a burst's replicas are kept: long enough for bursts that return, short enough to release"),
    Knob("forecast_horizon_s", (0.0, 15.0, 30.0, 60.0),
         "how far a ramp is projected: replicas ready when it arrives, or none bought for a ramp that stops"),
    Knob("scale_down_max_fraction", (0.1, 0.2, 0.4),
         "the scale-down step limit: how fast a flash crowd's replicas are released"),
)
# The baselines, tuned the same way on the same part: what a user of either would tune.
HPA_KNOBS = (Knob("hpa_target_cpu", _headroom(0.5, 0.9), "the HPA's CPU utilisation target"),)
KPA_KNOBS = (Knob("kpa_target_utilization", _headroom(0.5, 1.0),
                  "Knative's target utilisation: the per-replica target is TARGET_INFLIGHT_PER_REPLICA x this"),)


@dataclass(frozen=True)
class Score:
    windows_met: int
    windows: int
    replica_seconds: float

    @property
    def share(self) -> float:
        return self.windows_met / self.windows if self.windows else 0.0

    def feasible(self, goal: float = TARGET_WINDOWS) -> bool:
        return self.windows > 0 and self.windows_met >= goal * self.windows - 1e-9

    def text(self) -> str:
        return f"{self.share:.1%} ({self.windows_met}/{self.windows}) windows, {self.replica_seconds:.0f} replica-s"


@dataclass(frozen=True)
class Trial:
    settings: tuple[tuple[str, float], ...]   # (Config field, value) in the knobs' order
    score: Score
    margin: bool = False                      # keeps the goal with a margin (has_margin)


def score_span(windows: Sequence[Mapping], ready: Sequence[Sequence[float]], start_s: float, end_s: float) -> Score:
    """A run's score over [start_s, end_s) of its replay: windows that start in the span and had requests, and
    the ready replicas integrated over the span."""
    considered = [w for w in windows if start_s - 1e-9 <= w["start_s"] < end_s - 1e-9 and w["requests"] > 0]
    return Score(sum(1 for w in considered if w["meets_slo"]), len(considered),
                 integrate_steps(ready, start_s, end_s))


def has_margin(score: Score, less_headroom: Score | None, goal: float = TARGET_WINDOWS) -> bool:
    """Whether a score keeps the goal with a margin: a window to spare, or the same setting with one step less
    headroom (None: none was tried, or the headroom is at its last value) keeping the goal too."""
    if not score.feasible(goal):
        return False
    spare = Score(score.windows_met - 1, score.windows, score.replica_seconds).feasible(goal)
    return spare or (less_headroom is not None and less_headroom.feasible(goal))


def rank(score: Score, goal: float = TARGET_WINDOWS, margin: bool = True) -> tuple:
    """The order of candidates, best first (see the module's docstring)."""
    if score.feasible(goal):
        return (0 if margin else 1, score.replica_seconds)
    return (2, -score.share, score.replica_seconds)


def best_index(scores: Sequence[Score], goal: float = TARGET_WINDOWS, margins: Sequence[bool] | None = None) -> int:
    """The best score's position; of equal ones, the first. Without `margins`, every feasible one has one."""
    if not scores:
        raise ValueError("no candidate to choose from")
    margins = [True] * len(scores) if margins is None else margins
    return min(range(len(scores)), key=lambda i: (rank(scores[i], goal, margins[i]), i))


def next_value(knob: Knob, value: float) -> float | None:
    """The knob's next larger value (None after the last): the headroom knobs' values rise toward less headroom."""
    later = [float(v) for v in knob.values if float(v) > value + 1e-12]
    return min(later) if later else None


def coordinate_search(start: Mapping[str, float], knobs: Sequence[Knob], evaluate: Callable[[dict], Score],
                      goal: float = TARGET_WINDOWS, max_passes: int = MAX_PASSES) -> tuple[Trial, list[Trial]]:
    """(the best trial, every trial in the order run); `evaluate` runs each distinct setting once. The first
    knob is the headroom (its values from most to least): whether a trial has a margin may run the same
    setting at the headroom's next value."""
    names = [k.name for k in knobs]
    scores: dict[tuple, Score] = {}
    margins: dict[tuple, bool] = {}

    def key_of(values: Mapping[str, float]) -> tuple:
        return tuple((n, float(values[n])) for n in names)

    def score(values: Mapping[str, float]) -> Score:
        key = key_of(values)
        if key not in scores:
            scores[key] = evaluate(dict(key))
        return scores[key]

    def margin(values: Mapping[str, float]) -> bool:
        key = key_of(values)
        if key not in margins:
            own = score(values)
            step = next_value(knobs[0], float(values[names[0]])) if own.feasible(goal) else None
            less = score({**values, names[0]: step}) if step is not None and not has_margin(own, None, goal) else None
            margins[key] = has_margin(own, less, goal)
        return margins[key]

    def best(pool: Sequence[Mapping[str, float]]) -> int:
        return best_index([score(p) for p in pool], goal, [margin(p) for p in pool])

    current = {n: float(start[n]) for n in names}
    for _ in range(max_passes):
        changed = False
        for knob in knobs:
            pool = [current] + [{**current, knob.name: float(v)} for v in knob.values]
            chosen = pool[best(pool)]
            changed |= chosen != current
            current = chosen
        if not changed:
            break
    while len(margins) < len(scores):  # a margin's run is a candidate too
        for key in list(scores):
            margin(dict(key))
    order = [Trial(key, scores[key], margins[key]) for key in scores]
    return order[best_index([t.score for t in order], goal, [t.margin for t in order])], order


def split_at_s(duration_s: float, fraction: float, window_s: float = WINDOW_S) -> float:
    """Where the tuned part ends: `fraction` of the replay, down to a window boundary."""
    return math.floor(duration_s * fraction / window_s + 1e-9) * window_s


def split_problem(duration_s: float, split_s: float, warmup_s: float, window_s: float = WINDOW_S) -> str | None:
    """Why the split leaves a part without a scored window (None when both have one)."""
    if split_s - warmup_s < window_s:
        return (f"the tuned part is {split_s:g} s of the {duration_s:g} s replay, {warmup_s:g} s of it warm-up: "
                f"at least one {window_s:g} s window must be left to score")
    if duration_s - split_s < window_s:
        return (f"the held-out part is {duration_s - split_s:g} s of the {duration_s:g} s replay: at least one "
                f"{window_s:g} s window is needed")
    return None


@dataclass(frozen=True)
class Part:
    """A part of the replay, replayed from its own second 0, scored over [score_from_s, score_to_s)."""

    schedule: Schedule
    score_from_s: float
    score_to_s: float
    starts_at_s: float   # where its second 0 is in the whole replay


def split_schedule(schedule: Schedule, split_s: float, warmup_s: float) -> tuple[Part, Part]:
    """(tuned, held out). The tuned part is [0, split_s), scored after its warm-up; the held-out part is
    replayed from warmup_s before the split (those seconds only warm it up) and scored from the split on."""
    offsets = schedule.offsets_s
    before = offsets < split_s
    tuned = Schedule(offsets[before], schedule.trace_second[before], float(split_s))
    start = max(0.0, split_s - warmup_s)
    after = offsets >= start
    held = Schedule(offsets[after] - start, schedule.trace_second[after], schedule.duration_s - start)
    return (Part(tuned, min(warmup_s, split_s), split_s, 0.0),
            Part(held, split_s - start, schedule.duration_s - start, start))


def held_out_goals(scores: Mapping[str, Score], oracle_ratio: float = TARGET_ORACLE_RATIO,
                   goal: float = TARGET_WINDOWS) -> list[dict]:
    """The tuned slo on the held-out part against the goals: its windows, its cost against the oracle's, and
    fewer replica-seconds than tuned hpa and tuned kpa at no fewer windows kept. Each: goal, measured, verdict
    (PASS, MISS, or n/a without the run it needs)."""
    slo = scores["slo"]
    out = [{"goal": f">= {goal:.0%} of 10 s windows within the SLO",
            "measured": f"{slo.share:.1%} ({slo.windows_met}/{slo.windows})", "ok": slo.feasible(goal)}]
    oracle = scores.get("oracle")
    if oracle and oracle.replica_seconds > 0:
        ratio = slo.replica_seconds / oracle.replica_seconds
        out.append({"goal": f"<= {oracle_ratio:g}x the oracle's replica-seconds",
                    "measured": f"{ratio:.2f}x ({slo.replica_seconds:.0f} vs {oracle.replica_seconds:.0f})",
                    "ok": ratio <= oracle_ratio + 1e-9})
    for name in ("hpa", "kpa"):
        other = scores.get(name)
        if other is None:
            out.append({"goal": f"beats tuned {name}", "measured": f"{name} not run", "ok": None})
            continue
        out.append({"goal": f"fewer replica-seconds than tuned {name} at no fewer windows",
                    "measured": f"{slo.replica_seconds:.0f} vs {other.replica_seconds:.0f} replica-s, "
                                f"{slo.windows_met} vs {other.windows_met} windows kept",
                    "ok": slo.replica_seconds < other.replica_seconds and slo.windows_met >= other.windows_met})
    for row in out:
        ok = row.pop("ok")
        row["verdict"] = "n/a" if ok is None else ("PASS" if ok else "MISS")
    return out
