"""The status line a person watches while the local stack replays a trace.

It joins what the load tester writes to its status file each second (elapsed of total, offered and
achieved req/s, p95 of the last window, errors) with the autoscaler's latest decision (ready and desired
workers, the last scale event and its reason). On a terminal it is one line redrawn in place; elsewhere
(a log, CI) a plain line every PLAIN_EVERY_S seconds.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TextIO

PLAIN_EVERY_S = 10.0
# Enough of the decision log's end to hold its last few lines.
TAIL_BYTES = 16384


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or replaced while read


def last_decisions(path: Path) -> tuple[dict | None, dict | None]:
    """(the newest decision, the newest one that changed the count) from the end of the decision log."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return None, None
    newest = scaled = None
    for line in reversed(tail):
        if '"event":"decision"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the first, cut line of the tail, or one being written
        newest = newest or record
        if record.get("direction") in ("up", "down"):
            scaled = record
            break
    return newest, scaled


def render(status: dict | None, decision: dict | None, scaled: dict | None, slo_ms: float, label: str = "") -> str:
    parts = [label] if label else []
    if status is None:
        parts.append("starting the replay")
    else:
        p95 = "-" if status.get("p95_ms") is None else f"{status['p95_ms']:.0f}"
        parts += [f"{status['elapsed_s']:.0f}/{status['total_s']:.0f}s",
                  f"offered {status['offered_rps']:.1f}/s ok {status['achieved_rps']:.1f}/s",
                  f"p95 {p95}/{slo_ms:g}ms", f"errors {status['errors']}"]
    if decision is not None:
        parts.append(f"workers {decision.get('ready', '?')} ready/{decision.get('desired', '?')} desired")
    if scaled is not None:
        reason = str(scaled.get("reason", "")).split(": ", 1)[-1]
        parts.append(f"last {scaled['direction']} {scaled.get('current')}->{scaled.get('desired')} ({reason})")
    return " | ".join(parts)


class LiveLine:
    """Call `update()` often (every ~0.5 s); `close()` once the replay ended."""

    def __init__(self, stream: TextIO, status_file: Path, decision_log: Path, slo_ms: float, label: str = "",
                 clock=time.monotonic):
        self.stream = stream
        self.status_file = status_file
        self.decision_log = decision_log
        self.slo_ms = slo_ms
        self.label = label
        self.clock = clock
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_plain = None
        self._drawn = False

    def line(self) -> str:
        decision, scaled = last_decisions(self.decision_log)
        return render(read_status(self.status_file), decision, scaled, self.slo_ms, self.label)

    def _redraw(self, end: str = "") -> None:
        width = shutil.get_terminal_size((120, 24)).columns
        self.stream.write("\r\x1b[2K" + self.line()[:max(20, width - 1)] + end)
        self.stream.flush()

    def update(self) -> None:
        if self.tty:
            self._redraw()
            self._drawn = True
            return
        now = self.clock()
        if self._last_plain is None or now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            print(f"local: {self.line()}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self._drawn:
            self._redraw("\n")
