"""What admission plans with (inference/batcher.py): the seconds the queue takes per image, with a margin for
how much that varies.

The estimate is the samples' running mean plus DEVIATIONS times their running mean deviation, as TCP's
retransmission timer estimates a round trip (RFC 6298, with its gains). A few batches follow a change of
load or of CPU share, and one slow batch does not close the queue; where batches vary (a noisy host, a CPU
quota's throttling) the margin grows and the queue admits less, so what it admits is still answered in time.
With steady batches the margin shrinks to nothing and the estimate is the batches' own time.
"""

from __future__ import annotations

MEAN_GAIN = 1 / 8        # RFC 6298's alpha
DEVIATION_GAIN = 1 / 4   # RFC 6298's beta
DEVIATIONS = 2           # the margin, in mean deviations (RFC 6298's timer takes 4: a retransmission costs more)


class PerImageEstimate:
    """Fed one sample (seconds per image) per batch; `seconds` is None until the first."""

    def __init__(self) -> None:
        self.mean_s: float | None = None
        self.deviation_s = 0.0

    @property
    def seconds(self) -> float | None:
        return None if self.mean_s is None else self.mean_s + DEVIATIONS * self.deviation_s

    def add(self, sample_s: float) -> float:
        """Take one sample; return the new estimate."""
        if self.mean_s is None:
            self.mean_s = sample_s   # no deviation until the samples show one
        else:
            self.deviation_s += DEVIATION_GAIN * (abs(sample_s - self.mean_s) - self.deviation_s)
            self.mean_s += MEAN_GAIN * (sample_s - self.mean_s)
        return self.mean_s + DEVIATIONS * self.deviation_s
