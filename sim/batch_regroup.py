"""The service's answers grouped back into the batches (forwards) they came from, by their Server-Timing.

Every image of one batch reports the same `model` time (its batch's forward, to the microsecond) and its
answer leaves with the batch's. So answers with equal forward times whose answer times lie within
SAME_BATCH_GAP_S of each other were one batch. Without answer times (the service benchmark keeps only the
Server-Timing), equal forward times alone decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Answers of one batch leave within a few ms of each other (one write per request thread); two batches
# with the same forward time are at least a forward (> 20 ms) apart on the same worker.
SAME_BATCH_GAP_S = 0.02


@dataclass(frozen=True)
class Batches:
    order: np.ndarray     # the answers' indices, sorted so that each batch's answers are adjacent
    first: np.ndarray     # where each batch starts in that order
    sizes: np.ndarray     # images per batch
    forward: np.ndarray   # each batch's forward time (in the unit it was given in)

    def __len__(self) -> int:
        return len(self.sizes)

    def total(self, per_answer) -> np.ndarray:
        """Per batch, the sum of a per-answer figure (given in the answers' original order)."""
        return np.add.reduceat(np.asarray(per_answer, dtype=float)[self.order], self.first)

    def earliest(self, per_answer) -> np.ndarray:
        """Per batch, the least of a per-answer figure (given in the answers' original order)."""
        return np.minimum.reduceat(np.asarray(per_answer, dtype=float)[self.order], self.first)


def regroup_batches(forward, done_s=None) -> Batches:
    """The batches of answers with Server-Timing forward times `forward` (any unit) that were answered at
    `done_s` (seconds; None: unknown, equal forward times alone group answers)."""
    forward = np.asarray(forward, dtype=float)
    done = np.zeros(len(forward)) if done_s is None else np.asarray(done_s, dtype=float)
    order = np.lexsort((done, forward))
    f, d = forward[order], done[order]
    new = np.ones(len(f), dtype=bool)
    new[1:] = (f[1:] != f[:-1]) | (np.diff(d) > SAME_BATCH_GAP_S)
    first = np.flatnonzero(new)
    return Batches(order=order, first=first, sizes=np.diff(np.append(first, len(f))), forward=f[first])
