"""The open-loop sender: every request leaves at its scheduled time, whatever earlier ones are doing.

One event loop dispatches due requests as tasks and never waits for responses, so a slow or stuck
service cannot hold back the offered load (no coordinated omission). If the loop itself falls
behind, the gap between scheduled and actual send time is recorded per request and shown live;
latency is counted from the scheduled time, so lag never flatters the results.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from loadtester.http_client import Client, Target, failure_kind
from loadtester.images import Photo
from loadtester.records import RequestTable, kind_of_status
from loadtester.schedule import Schedule

# Time between building the client and the first scheduled request, so setup is not counted as lag.
START_DELAY_S = 0.2
# Longest the dispatcher sleeps at once, so a stop request is noticed quickly.
_MAX_NAP_S = 0.25


@dataclass
class LiveCounters:
    """Running totals the progress display reads (same thread as the sender, so no locks)."""

    sent: int = 0
    done: int = 0
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    max_lag_ms: float = 0.0
    recent: list = field(default_factory=list)  # (done time s, latency ms) of ok responses, pruned by the reader


class Replayer:
    def __init__(self, target: Target, schedule: Schedule, photos: list[Photo], *, timeout_s: float,
                 max_inflight: int, client_factory: Callable[[Target], Client] = Client):
        # client_factory(target), called in the running loop, gives an object with prepare(photo),
        # async post(prepared) -> Reply and async close(): the benchmark passes its baseline client here.
        self.client_factory = client_factory
        self.target = target
        self.schedule = schedule
        self.photos = photos
        self.timeout_s = timeout_s
        self.max_inflight = max_inflight
        n = len(schedule)
        self.table = RequestTable.empty(n)
        self.table.scheduled_s[:] = schedule.offsets_s
        self.table.trace_second[:] = schedule.trace_second
        self.table.image[:] = [photos[i % len(photos)].name for i in range(n)]
        self.live = LiveCounters()
        self.dispatched = 0          # requests whose time has come (sent or dropped)
        self.t0 = 0.0                # event-loop time of offset 0
        self.start_unix_s = 0.0
        self.interrupted = False
        self.stopped_at_s = schedule.duration_s  # replay length actually covered
        self._inflight: set[asyncio.Task] = set()
        self._stop_requested = False
        self._wakeup: asyncio.Event | None = None

    def result_table(self) -> RequestTable:
        """The records of every request whose time came; a blank kind means it was cancelled unsent."""
        table = self.table.subset(np.arange(len(self.table)) < self.dispatched)
        table.kind[table.kind == ""] = "cancelled"
        return table

    def abort(self) -> None:
        """Stop now: no more sends and no waiting for responses."""
        self.request_stop()
        for task in list(self._inflight):
            task.cancel()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def request_stop(self) -> None:
        """Stop dispatching (from the loop's thread: a signal handler or another task)."""
        self._stop_requested = True
        self.interrupted = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self, stop: threading.Event | None = None, drain_timeout_s: float | None = None,
                  interrupt_drain_s: float = 5.0) -> None:
        """Send the whole schedule, then wait for in-flight requests (each is bounded by timeout_s)."""
        import time

        loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._client = self.client_factory(self.target)
        # Every photo's request is built once, before the clock starts.
        self._requests = [self._client.prepare(p) for p in self.photos]
        self.t0 = loop.time() + START_DELAY_S
        self.start_unix_s = time.time() + START_DELAY_S
        offsets = self.schedule.offsets_s.tolist()
        n = len(offsets)
        i = 0
        try:
            while i < n:
                if self._stop_requested or (stop is not None and stop.is_set()):
                    self.interrupted = True
                    self.stopped_at_s = max(0.0, min(loop.time() - self.t0, self.schedule.duration_s))
                    break
                now = loop.time() - self.t0
                if offsets[i] > now:
                    nap = offsets[i] - now
                    if nap > _MAX_NAP_S:
                        try:
                            await asyncio.wait_for(self._wakeup.wait(), _MAX_NAP_S)
                        except TimeoutError:
                            pass
                    else:
                        await asyncio.sleep(nap)
                    continue
                while i < n and offsets[i] <= now:
                    self._dispatch(i, now)
                    i += 1
                self.dispatched = i
            self.dispatched = i
            await self._drain(interrupt_drain_s if self.interrupted else drain_timeout_s, stop)
        finally:
            for task in list(self._inflight):
                task.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._client.close()

    async def _drain(self, limit_s: float | None, stop: threading.Event | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if limit_s is None else loop.time() + limit_s
        while self._inflight:
            if deadline is not None and loop.time() >= deadline:
                return
            if not self.interrupted and (self._stop_requested or (stop is not None and stop.is_set())):
                # A stop during the drain shortens it to the interrupt grace period.
                self.interrupted = True
                deadline = loop.time() + 5.0
            wait_s = _MAX_NAP_S if deadline is None else max(0.0, min(_MAX_NAP_S, deadline - loop.time()))
            await asyncio.wait(self._inflight, timeout=wait_s)

    def _dispatch(self, i: int, now: float) -> None:
        if len(self._inflight) >= self.max_inflight:
            self.table.kind[i] = "dropped_client"
            self.live.dropped += 1
            self.live.errors += 1
            return
        lag_ms = (now - self.table.scheduled_s[i]) * 1000.0
        if lag_ms > self.live.max_lag_ms:
            self.live.max_lag_ms = lag_ms
        task = asyncio.ensure_future(self._one(i))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _one(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        table = self.table
        sent = loop.time()
        table.sent_s[i] = sent - self.t0
        self.live.sent += 1
        kind = None
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._client.post(self._requests[i % len(self._requests)])
            done = reply.done_at
            table.status[i] = reply.status
            kind = kind_of_status(reply.status)
            timings = reply.server_timings_ms
            if timings:
                table.server_queue_ms[i] = timings.get("queue", np.nan)
                table.server_preprocess_ms[i] = timings.get("preprocess", np.nan)
                table.server_model_ms[i] = timings.get("model", np.nan)
        except asyncio.CancelledError:
            table.kind[i] = "cancelled"
            self.live.errors += 1
            self.live.done += 1
            raise
        except Exception as exc:  # noqa: BLE001 - a failure (or a bug here) costs one request, not the run
            # timeout, conn_refused, conn_reset, protocol_error, conn_error, or client_error for a bug.
            done, kind = loop.time(), failure_kind(exc)
        table.kind[i] = kind
        table.latency_ms[i] = (done - self.t0 - table.scheduled_s[i]) * 1000.0
        table.service_ms[i] = (done - sent) * 1000.0
        live = self.live
        live.done += 1
        if kind == "ok":
            live.ok += 1
            live.recent.append((done - self.t0, table.latency_ms[i]))
        else:
            live.errors += 1
