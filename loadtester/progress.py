"""The live progress bar (elapsed/total, offered vs achieved rate, recent p95, errors, sender lag), and the
same snapshot as a JSON status file for a program that watches the run (the local stack's status line)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import numpy as np

from loadtester.sender import Replayer

# The sender's own delay above which the bar shows it (results stay honest: latency counts it).
SHOW_LAG_MS = 20.0


def snapshot(replayer: Replayer, window_s: float) -> dict:
    """What is happening now: elapsed of total, offered and achieved rate and p95 over the last window.

    Also prunes the sender's recent-latency list to that window (it would otherwise grow for the run)."""
    loop = asyncio.get_running_loop()
    now = loop.time() - replayer.t0
    span = max(min(window_s, now), 1e-3)
    cutoff = now - window_s
    live = replayer.live
    recent = live.recent
    drop = 0
    while drop < len(recent) and recent[drop][0] < cutoff:
        drop += 1
    del recent[:drop]
    offsets = replayer.schedule.offsets_s
    offered = (np.searchsorted(offsets, now) - np.searchsorted(offsets, now - span)) / span
    achieved = sum(1 for t, _ in recent if t >= now - span) / span
    p95 = float(np.percentile([lat for _, lat in recent], 95)) if recent else None
    return {"elapsed_s": round(min(max(now, 0.0), replayer.schedule.duration_s), 1),
            "total_s": round(replayer.schedule.duration_s, 1), "window_s": window_s,
            "offered_rps": round(float(offered), 2), "achieved_rps": round(achieved, 2),
            "p95_ms": None if p95 is None else round(p95, 1), "inflight": replayer.inflight,
            "sent": live.sent, "ok": live.ok, "errors": live.errors, "max_lag_ms": round(live.max_lag_ms, 1)}


async def write_status(replayer: Replayer, window_s: float, path: Path, interval_s: float = 1.0) -> None:
    """Until cancelled: the snapshot as JSON in `path`, replaced atomically, for a program watching the run."""
    tmp = path.with_name(path.name + ".tmp")
    while True:
        await asyncio.sleep(interval_s)
        tmp.write_text(json.dumps(snapshot(replayer, window_s)) + "\n")
        os.replace(tmp, path)


async def show_progress(replayer: Replayer, window_s: float, enabled: bool, stream=None) -> None:
    """Refresh until cancelled. Also prunes the sender's recent-latency list, displayed or not."""
    stream = stream or sys.stderr
    interactive = enabled and getattr(stream, "isatty", lambda: False)()
    interval_s = 0.5 if interactive else 10.0
    bar = None
    if interactive:
        from tqdm import tqdm

        total = round(replayer.schedule.duration_s, 1)
        try:
            size = os.get_terminal_size(stream.fileno())
            sized = size.columns > 0 and size.lines > 0
        except (OSError, ValueError, AttributeError):
            sized = False
        # A terminal that reports a 0x0 size (some pseudo-terminals) would get an invisible bar.
        shape = {"dynamic_ncols": True} if sized else {"ncols": 120, "nrows": 24}
        bar = tqdm(total=total, unit="s", file=stream, mininterval=0, leave=True,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s{postfix}", **shape)
    try:
        while True:
            await asyncio.sleep(interval_s)
            now = snapshot(replayer, window_s)
            if not enabled:
                continue
            fields = {"offered": f"{now['offered_rps']:.1f}/s", "achieved": f"{now['achieved_rps']:.1f}/s",
                      f"p95({window_s:g}s)": "-" if now["p95_ms"] is None else f"{now['p95_ms']:.0f}ms",
                      "inflight": now["inflight"], "errors": now["errors"]}
            if now["max_lag_ms"] > SHOW_LAG_MS:
                fields["max_lag"] = f"{now['max_lag_ms']:.0f}ms"
            if bar is None:
                # Not a terminal (a log file): one plain line now and then instead of redrawn bars.
                print(f"{now['elapsed_s']:.0f}/{now['total_s']:.0f}s " + " ".join(f"{k}={v}" for k, v in fields.items()),
                      file=stream, flush=True)
                continue
            bar.set_postfix(fields, refresh=False)
            bar.n = min(now["elapsed_s"], bar.total)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
