"""Where a policy's replica-seconds above the oracle's, and its missed SLO windows, come from.

Pure functions of one run's record beside the oracle's on the same schedule (the simulator's ready
replica series, the policy's decision lines and its 10 s windows).

Replica-seconds above the oracle: each second where the policy had more replicas ready than the oracle,
the difference, split by what the policy's decision in force wanted:
- `headroom`: it wanted at least the replicas it had (its demand at TARGET_UTILIZATION, the tolerance
  band, a forecast, panic or the latency step asked for them);
- `held`: it wanted fewer and kept them (scale-down stabilization, the step limit, and the
  no-scale-down of panic, of a restart or of a missed SLO);
- `undecided`: before its first decision (a run that starts above the oracle).
Seconds with fewer replicas than the oracle cost nothing here: the oracle is the floor, not the target.

A missed window is `short` when the oracle had more replicas ready at some second of it. Then the
shortfall's onset (where the run of short seconds reaching into the window began), the policy's first
scale-up at or after it (before it was level again), and when its ready count caught up with the
oracle's say whether it was late to see the surge (detection) or late to get replicas ready (start-up).
A window missed without a shortfall missed at the oracle's count or above: queueing that the count was
not short for (a backlog from before, or arrivals bunched within the window), or the cap, where both ran
at MAX_REPLICAS throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from comparison.events import integrate_steps, unix_time
from planning.runs import ORACLE
from sim.results import WINDOW_S

HEADROOM, HELD, UNDECIDED = "headroom", "held", "undecided"


@dataclass(frozen=True)
class Miss:
    """One missed 10 s window: where it starts, and the shortfall against the oracle if there was one."""

    start_s: float
    short_s: int = 0                  # seconds of the window with fewer ready replicas than the oracle
    short_replicas: int = 0           # the largest shortfall in those seconds
    onset_s: float | None = None      # where that run of short seconds began
    asked_s: float | None = None      # the policy's first scale-up at or after the onset (None: none before the end)
    caught_up_s: float | None = None  # its ready count back at the oracle's (None: not within the replay)
    at_max: bool = False              # not short, and at MAX_REPLICAS throughout (the oracle too)

    def text(self) -> str:
        at = f"{self.start_s:g} s"
        if not self.short_s:
            if self.at_max:
                return f"{at}: at MAX_REPLICAS, as the oracle (the cap, not the policy)"
            return f"{at}: not short of replicas (missed at the oracle's count or above)"
        parts = [f"{at}: short of up to {self.short_replicas} replica(s) for {self.short_s} s of the window"]
        if self.asked_s is None:
            parts.append("no scale-up asked")
        else:
            parts.append(f"scale-up asked {self.asked_s - self.onset_s:.0f} s after the shortfall began")
            if self.caught_up_s is not None:
                parts.append(f"level with the oracle {self.caught_up_s - self.asked_s:.0f} s after asking")
        return ", ".join(parts)


@dataclass(frozen=True)
class Attribution:
    excess_replica_s: dict[str, float]   # HEADROOM, HELD, UNDECIDED
    misses: tuple[Miss, ...]

    def lines(self, oracle_replica_s: float) -> list[str]:
        total = sum(self.excess_replica_s.values())
        parts = [f"{name} {self.excess_replica_s[name]:.0f}"
                 + (f" ({self.excess_replica_s[name] / oracle_replica_s:.1%} of the oracle's)" if oracle_replica_s > 0
                    else "") for name in (HEADROOM, HELD, UNDECIDED) if self.excess_replica_s[name] > 0]
        lines = [f"replica-s above the oracle: {total:.0f}" + (": " + ", ".join(parts) if parts else "")]
        lines += [f"missed window {m.text()}" for m in self.misses]
        return lines


def per_second(steps: Sequence[Sequence[float]], duration_s: float) -> list[float]:
    """A step series [[t, value], ...] (sorted) sampled at the middle of each whole second."""
    out, i, value = [], 0, float(steps[0][1]) if steps else 0.0
    for s in range(math.ceil(duration_s - 1e-9)):
        while i < len(steps) and steps[i][0] <= s + 0.5:
            value = float(steps[i][1])
            i += 1
        out.append(value)
    return out


def attribute(ready: Sequence[Sequence[float]], oracle_ready: Sequence[Sequence[float]], decisions: Sequence[Mapping],
              windows: Sequence[Mapping], duration_s: float, start_unix_s: float, max_replicas: int) -> Attribution:
    mine, floor = per_second(ready, duration_s), per_second(oracle_ready, duration_s)
    decided = sorted(((unix_time(d["time"]) - start_unix_s, d) for d in decisions if "time" in d),
                     key=lambda pair: pair[0])
    excess = {HEADROOM: 0.0, HELD: 0.0, UNDECIDED: 0.0}
    j, last = 0, None
    for s, (have, need) in enumerate(zip(mine, floor)):
        while j < len(decided) and decided[j][0] <= s + 0.5:
            last = decided[j][1]
            j += 1
        if have > need:
            excess[_why(last)] += have - need
    ups = [(t, d) for t, d in decided if d.get("desired", 0) > d.get("current", 0)]
    misses = tuple(_miss(w["start_s"], mine, floor, ups, max_replicas) for w in windows
                   if w.get("requests", 0) > 0 and not w["meets_slo"])
    return Attribution(excess, misses)


def _why(decision: Mapping | None) -> str:
    if decision is None:
        return UNDECIDED
    wanted = decision.get("want", decision.get("desired"))
    return HELD if wanted is not None and wanted < decision.get("current", 0) else HEADROOM


def _miss(start_s: float, mine: list[float], floor: list[float], ups: list, max_replicas: int) -> Miss:
    seconds = range(int(start_s), min(int(start_s + WINDOW_S), len(mine)))
    short = [s for s in seconds if floor[s] > mine[s]]
    if not short:
        # The oracle is held to the same MAX_REPLICAS: short of it means a policy that had not caught up.
        return Miss(start_s, at_max=bool(seconds) and all(mine[s] >= max_replicas for s in seconds))
    onset = short[0]
    while onset > 0 and floor[onset - 1] > mine[onset - 1]:
        onset -= 1
    caught = next((s for s in range(short[-1], len(mine)) if mine[s] >= floor[s]), None)
    # The scale-up that answered this shortfall: at or after its onset, before the policy was level again.
    end = caught + 0.5 if caught is not None else float("inf")
    asked = next((t for t, _ in ups if onset - 0.5 <= t < end), None)
    return Miss(start_s, len(short), int(max(floor[s] - mine[s] for s in short)), float(onset),
                None if asked is None else max(asked, float(onset)), float(caught) if caught is not None else None)


def attribution_lines(results: Mapping, plan: Mapping, start_unix_s: float, policy: str = "slo") -> list[str]:
    """The attribution of `policy`'s run against the oracle's, as lines; none unless both ran."""
    if policy not in results or ORACLE not in results:
        return []
    mine, oracle = results[policy], results[ORACLE]
    duration_s = plan["schedule"].duration_s
    found = attribute(mine.ready_timeline, oracle.ready_timeline, mine.decisions, mine.windows, duration_s,
                      start_unix_s, plan["settings"].config.max_replicas)
    return found.lines(integrate_steps(oracle.ready_timeline, 0.0, duration_s))
