"""What passes between request threads and the model thread (inference/batcher.py): a job, the statistics
of a forward, and the two ways a job can fail without reaching the model."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np


class Overloaded(RuntimeError):
    """No room: `reason` is `queue_full` (in time or in images) or `draining`; retry after `retry_after_s`."""

    def __init__(self, reason: str, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class DeadlineExceeded(RuntimeError):
    """The job waited past its deadline; it was dropped before the model saw it."""


@dataclass
class Job:
    images: np.ndarray  # (n, 224, 224, 3) uint8
    deadline: float  # on the batcher's clock
    enqueued_at: float = 0.0
    queue_s: float = 0.0
    model_s: float = 0.0
    batch_size: int = 0
    probs: np.ndarray | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def size(self) -> int:
        return int(self.images.shape[0])

    def finish(self, probs: np.ndarray | None = None, error: BaseException | None = None) -> None:
        self.probs, self.error = probs, error
        self.done.set()


@dataclass
class BatchStats:
    """What the model thread reports after each forward (for metrics)."""

    size: int
    model_s: float   # the forwards alone
    queue_s: list[float]
    paced_s: float = 0.0   # waited before the forwards, to stay within the CPU quota (inference/cpu_quota.py)
