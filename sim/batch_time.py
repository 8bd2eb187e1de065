"""What one forward of the model costs: a line in the batch's images.

    forward(b) = intercept_ms + per_image_ms x b          (b = images in the batch)

The simulator's replica profile (sim/profile.py, `Profile.model_s`), the calibration's fit to a run's
Server-Timing (sim/calibration/forwards.py) and the service benchmark's ideal queue (bench/ideal_queue.py)
all use this one line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchTime:
    intercept_ms: float
    per_image_ms: float

    @classmethod
    def through(cls, one_s: float, full_s: float, full_batch: int) -> "BatchTime":
        """The line through two measured times: one image in `one_s`, `full_batch` images in `full_s`."""
        per_image_s = (full_s - one_s) / max(1, full_batch - 1)
        return cls((one_s - per_image_s) * 1000.0, per_image_s * 1000.0)

    def forward_ms(self, images):
        """The forward of `images` images in ms (also elementwise over an array of batch sizes)."""
        return self.intercept_ms + self.per_image_ms * images

    def __call__(self, images: int) -> float:
        """The forward of `images` images in seconds."""
        return self.forward_ms(images) / 1000.0

    def scaled(self, factor: float) -> "BatchTime":
        """Every forward `factor` times as long."""
        return BatchTime(self.intercept_ms * factor, self.per_image_ms * factor)
