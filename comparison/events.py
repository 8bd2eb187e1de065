"""What the autoscaler's decision lines and a replica series say: scale events, reversals, replica-seconds.

Pure functions of data: the local stack reads the lines from a run's decisions.jsonl, the simulator from
the log its in-memory autoscaler loop wrote; both hand them here. A run recorded without decision lines (on
a cluster) has its scale events read off its replica series (`series_events`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Iterable, Sequence

# The one definition of replica-seconds is the load tester's, which records it for every run with a
# workers series; the local stack, the simulator and its calibration integrate through it too.
from loadtester.replica_seconds import integrate_steps  # noqa: F401


def decision_lines(lines: Iterable[str]) -> list[dict]:
    """The decision records of the autoscaler's JSON-lines log (other events and stray lines skipped)."""
    out = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "decision":
            out.append(record)
    return out


def unix_time(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def scale_events(decisions: list[dict], start_unix_s: float) -> list[dict]:
    """Applied scale-ups and scale-downs, with their time relative to the start of the replay."""
    events = []
    for d in decisions:
        if d.get("direction") in ("up", "down") and d.get("applied", True):
            events.append({"t_s": round(unix_time(d["time"]) - start_unix_s, 3), "direction": d["direction"],
                           "from": d.get("current"), "to": d.get("desired"), "reason": d.get("reason", "")})
    return events


def reversals(events: list[dict]) -> int:
    """How often the direction of consecutive scale events flips (up then down, or down then up)."""
    directions = [e["direction"] for e in events]
    return sum(1 for a, b in zip(directions, directions[1:]) if a != b)


def series_events(points: Sequence[Sequence[float]]) -> list[dict]:
    """Scale events read off a replica series ([t_s, count] points): one wherever the count changes, up or
    down, from the count before to the count after. For runs without the autoscaler's decision lines (a
    cluster, an HPA baseline): the series the load tester recorded from Prometheus is all there is."""
    events: list[dict] = []
    before = None
    for t_s, value in sorted((p for p in points if math.isfinite(p[1])), key=lambda p: p[0]):
        if before is not None and value != before:
            events.append({"t_s": round(t_s, 3), "direction": "up" if value > before else "down",
                           "from": _count(before), "to": _count(value), "reason": "replica series"})
        before = value
    return events


def _count(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
