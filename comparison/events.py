"""What the autoscaler's decision lines and a replica series say: scale events, reversals, replica-seconds.

Pure functions of data: the local stack reads the lines from a run's decisions.jsonl, the simulator from
the log its in-memory autoscaler loop wrote; both hand them here.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Iterable, Sequence


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


def integrate_steps(points: Sequence[Sequence[float]], start_s: float, end_s: float) -> float:
    """Integral of a step function given as [t, value] points (each value holds until the next point).

    The one definition of replica-seconds: the local stack's Prometheus series, the simulator's ready
    timeline and the calibration's comparison of the two all integrate through here."""
    # Sorted by time only, and stably: of two points at one time the later-recorded value holds.
    points = sorted((p for p in points if math.isfinite(p[1])), key=lambda p: p[0])
    if not points or end_s <= start_s:
        return 0.0
    total = 0.0
    for (t, value), nxt in zip(points, [*points[1:], (end_s, 0.0)]):
        lo, hi = max(t, start_s), min(nxt[0], end_s)
        if hi > lo:
            total += value * (hi - lo)
    # Before the first sample, the first value held (a run starts with its initial workers).
    if points[0][0] > start_s:
        total += points[0][1] * (min(points[0][0], end_s) - start_s)
    return total
