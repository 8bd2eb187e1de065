"""gunicorn's gthread worker, made to share one queue with its siblings.

Every worker of a pod listens on the same socket and plain gthread workers accept whatever arrives, so a
connection can land on a worker whose model already has a batch waiting while a sibling sits idle: per
worker queues, with the tail of the unluckiest. Here a worker with at least ACCEPT_YIELD_DEPTH images
waiting stops accepting for ACCEPT_YIELD_MS, leaving the connection in the kernel's accept queue for a
sibling with room. The kernel's queue thus acts as the shared queue; when every worker is busy, the first
one whose pause ends takes the connection anyway, so a yield delays an answer by at most ACCEPT_YIELD_MS.
A worker with less than a batch of room left, by admission's own rules (the count and the predicted wait),
does not pause: under overload its siblings are as full, and the pause would only delay the 503 that must
come at once. (By the count alone, a worker that admission holds by the wait never looks that full, and would
pause before most of its 503s.)

Selected by inference/gunicorn.conf.py (`worker_class`); the settings come from inference/config.py.
"""

from __future__ import annotations

import threading
import time

from gunicorn.workers.gthread import ThreadWorker

from inference.config import ServiceConfig


class SharedQueueWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        settings = ServiceConfig.from_env()
        self.yield_depth = settings.accept_yield_depth or settings.max_batch_size
        # Pausing needs this much room left by admission's own rules (count and predicted wait): with less,
        # the worker is overloaded, not unlucky.
        self.room_images = settings.max_batch_size
        self.yield_s = settings.accept_yield_ms / 1000.0
        self._resume_at = 0.0
        # After a pause, everything already waiting has waited long enough: take it all, without pausing,
        # for as long as the pause lasted (one accept per wake-up would let the kernel's queue grow).
        self._take_until = 0.0

    def _busy_with_room(self) -> bool:
        state = getattr(self, "wsgi", None) and self.wsgi.extensions.get("inference")
        return (state is not None and state.batcher.depth >= self.yield_depth
                and state.batcher.has_room(self.room_images))

    def accept(self, listener):
        if self.yield_s > 0 and time.monotonic() >= self._take_until and self._busy_with_room():
            self._pause()
            return
        super().accept(listener)

    def _pause(self) -> None:
        self._resume_at = time.monotonic() + self.yield_s
        super().set_accept_enabled(False)
        # The main loop sleeps in select() for up to a second: wake it when the pause ends.
        timer = threading.Timer(self.yield_s, self.method_queue.defer, args=(self._resume,))
        timer.daemon = True
        timer.start()

    def _resume(self) -> None:
        self._take_until = time.monotonic() + self.yield_s
        self._resume_at = 0.0
        if self.alive and self.nr_conns < self.worker_connections:
            super().set_accept_enabled(True)

    def set_accept_enabled(self, enabled):
        # gthread's loop re-enables accepting on every turn; a pause holds until its timer ends it.
        if enabled and time.monotonic() < self._resume_at:
            return
        super().set_accept_enabled(enabled)
