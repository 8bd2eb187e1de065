"""The simulated clock and the order of control events (scrapes, polls, pods becoming ready or leaving).

Requests are not events here: between two control events nothing the requests depend on changes (the
endpoints are fixed), so the world is moved forward in one step per gap (`advance(t_s)`), and the
replicas work through their arrivals in bulk. That is what makes millions of requests cheap.

Events at the same instant run in priority order, then in the order they were scheduled: a pod that
becomes ready at t is scraped at t, and a poll at t sees the scrape at t.
"""

from __future__ import annotations

import heapq
from typing import Callable

LIFECYCLE = 0   # a pod becomes ready, or leaves the Service's endpoints
SCRAPE = 1      # Prometheus scrapes every target
POLL = 2        # the autoscaler (or the oracle) decides


class Clock:
    """Simulated seconds since the start of the replay; callable, as the autoscaler's clocks are."""

    def __init__(self, start_s: float = 0.0):
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s


class Engine:
    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self._heap: list[tuple[float, int, int, Callable[[], None]]] = []
        self._seq = 0

    @property
    def now_s(self) -> float:
        return self.clock.now_s

    def at(self, t_s: float, priority: int, action: Callable[[], None]) -> None:
        if t_s < self.clock.now_s:
            raise ValueError(f"cannot schedule at {t_s} s, before now ({self.clock.now_s} s)")
        heapq.heappush(self._heap, (t_s, priority, self._seq, action))
        self._seq += 1

    def every(self, interval_s: float, priority: int, action: Callable[[], None], start_s: float = 0.0,
              until_s: float = float("inf")) -> None:
        """`action` at start_s, start_s + interval_s, ... while <= until_s (counted, so no drift)."""
        def tick(k: int) -> None:
            action()
            t = start_s + (k + 1) * interval_s
            if t <= until_s + 1e-9:
                self.at(t, priority, lambda: tick(k + 1))

        if start_s <= until_s:
            self.at(start_s, priority, lambda: tick(0))

    def run(self, until_s: float, advance: Callable[[float], None]) -> None:
        """Run every event up to and including until_s; `advance(t)` moves the world to t before each."""
        while self._heap and self._heap[0][0] <= until_s:
            t_s, _, _, action = heapq.heappop(self._heap)
            advance(t_s)
            self.clock.now_s = t_s
            action()
        advance(until_s)
        self.clock.now_s = max(self.clock.now_s, until_s)
