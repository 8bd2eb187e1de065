"""The live progress bar: elapsed/total, offered vs achieved rate, recent p95, errors, sender lag."""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np

from loadtester.sender import Replayer

# The sender's own delay above which the bar shows it (results stay honest: latency counts it).
SHOW_LAG_MS = 20.0


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
    loop = asyncio.get_running_loop()
    offsets = replayer.schedule.offsets_s
    live = replayer.live
    try:
        while True:
            await asyncio.sleep(interval_s)
            now = loop.time() - replayer.t0
            span = max(min(window_s, now), 1e-3)
            cutoff = now - window_s
            recent = live.recent
            drop = 0
            while drop < len(recent) and recent[drop][0] < cutoff:
                drop += 1
            del recent[:drop]
            if not enabled:
                continue
            offered = (np.searchsorted(offsets, now) - np.searchsorted(offsets, now - span)) / span
            achieved = sum(1 for t, _ in recent if t >= now - span) / span
            p95 = np.percentile([lat for _, lat in recent], 95) if recent else float("nan")
            fields = {"offered": f"{offered:.1f}/s", "achieved": f"{achieved:.1f}/s",
                      f"p95({window_s:g}s)": "-" if np.isnan(p95) else f"{p95:.0f}ms",
                      "inflight": replayer.inflight, "errors": live.errors}
            if live.max_lag_ms > SHOW_LAG_MS:
                fields["max_lag"] = f"{live.max_lag_ms:.0f}ms"
            if bar is None:
                # Not a terminal (a log file): one plain line now and then instead of redrawn bars.
                print(f"{min(now, replayer.schedule.duration_s):.0f}/{replayer.schedule.duration_s:.0f}s "
                      + " ".join(f"{k}={v}" for k, v in fields.items()), file=stream, flush=True)
                continue
            bar.set_postfix(fields, refresh=False)
            bar.n = min(max(now, 0.0), bar.total)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
