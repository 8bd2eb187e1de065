"""What one worker holds while it serves: the settings, the model, the batcher, the metrics and the draining
flag (`InferenceState`), and how one request's images become predictions (`classify`, returning a `Result`).
Both APIs (`/predict` in inference/app.py, v2 in inference/oip.py) call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from flask import g

from inference.batcher import Batcher
from inference.config import ServiceConfig
from inference.cpu_quota import Pacer, Quota, read_quota
from inference.inputs import ApiError, check_count
from inference.jobs import BatchStats, DeadlineExceeded, Job, Overloaded
from inference.metrics import Metrics
from inference.model import Classifier
from inference.preprocess import ImageError, preprocess


@dataclass
class Result:
    predictions: list[list[dict]]
    queue_ms: float
    preprocess_ms: float
    model_ms: float

    def timings(self) -> dict:
        return {"queue": round(self.queue_ms, 3), "preprocess": round(self.preprocess_ms, 3),
                "model": round(self.model_ms, 3)}

    def server_timing(self) -> str:
        return (f"queue;dur={self.queue_ms:.3f}, preprocess;dur={self.preprocess_ms:.3f}, "
                f"model;dur={self.model_ms:.3f}")


def quota_pacer(config: ServiceConfig, quota: Quota | None) -> Pacer | None:
    """What keeps a worker within its share of the CPU quota (CPU_QUOTA_TARGET); None without a quota."""
    if quota is None or config.cpu_quota_target <= 0:
        return None
    share_s = quota.cpus * quota.period_s / config.web_concurrency
    return Pacer(config.cpu_quota_target * share_s, quota.period_s)


def quota_note(config: ServiceConfig, quota: Quota | None) -> str:
    """The start-up log's words on the CPU quota."""
    if quota is None:
        return "no CPU quota"
    limit = f"a CPU quota of {quota.cpus:g} CPU per {quota.period_s * 1000:g} ms"
    if config.cpu_quota_target <= 0:
        return f"{limit}, not paced (CPU_QUOTA_TARGET=0)"
    return f"{limit}, paced to {config.cpu_quota_target:g} of this worker's share (CPU_QUOTA_TARGET)"


class InferenceState:
    """What one worker holds: the settings, the model, the batcher, the metrics and the draining flag."""

    def __init__(self, config: ServiceConfig, classifier: Classifier, metrics: Metrics):
        self.config = config
        self.classifier = classifier
        self.metrics = metrics
        self.draining = False
        quota = read_quota()
        self.batcher = Batcher(classifier.probabilities, config.max_batch_size, config.max_batch_delay_ms / 1000.0,
                               config.queue_limit, max_wait_s=config.max_queue_wait_ms / 1000.0,
                               on_batch=self._on_batch, on_depth=metrics.queue_depth.set,
                               on_expired=self._on_expired, pacer=quota_pacer(config, quota))
        self.quota_note = quota_note(config, quota)

    def _on_batch(self, stats: BatchStats) -> None:
        self.metrics.batch_size.observe(stats.size)
        self.metrics.model_duration.observe(stats.model_s)
        if stats.paced_s:
            self.metrics.quota_wait.inc(stats.paced_s)
        for queue_s in stats.queue_s:
            self.metrics.queue_duration.observe(queue_s)

    def _on_expired(self, job: Job) -> None:
        self.metrics.queue_duration.observe(job.queue_s)

    def start_draining(self) -> None:
        """Turn not-ready. gunicorn stops accepting connections; what this worker already holds still runs."""
        self.draining = True

    def stop(self, timeout_s: float | None = None) -> None:
        """Refuse new work (503 draining), finish what is queued, stop the model thread."""
        self.draining = True
        self.batcher.close(timeout_s)

    def check_room(self) -> None:
        """503 now if one image could not be admitted: before the body is read, the cheapest refusal."""
        try:
            self.batcher.check_room()
        except Overloaded as exc:
            self._overloaded(exc)

    def classify(self, images: list[bytes], topk: int) -> Result:
        check_count(len(images))
        try:
            # Refuse before spending CPU on decoding work that could not be queued anyway.
            self.batcher.admit(len(images))
        except Overloaded as exc:
            self._overloaded(exc)
        try:
            started = time.perf_counter()
            tensors = []
            for i, data in enumerate(images):
                what = "image" if len(images) == 1 else f"image {i + 1} of {len(images)}"
                try:
                    tensors.append(preprocess(data, self.config.max_image_pixels, what))
                except ImageError as exc:
                    raise ApiError(exc.status, str(exc), exc.reason) from None
            preprocess_s = time.perf_counter() - started
            self.metrics.preprocess_duration.observe(preprocess_s)
            job = self.batcher.submit(np.stack(tensors), g.started_monotonic + self.config.request_timeout_s,
                                      admitted=True)
        except BaseException:
            self.batcher.cancel(len(images))
            raise
        deadline = job.deadline
        # Once its forward starts a job finishes in bounded time; the margin only guards against a hung model.
        if not job.done.wait(timeout=max(0.0, deadline - time.monotonic()) + 120.0):
            raise ApiError(504, "the model did not answer in time", "deadline")
        if isinstance(job.error, DeadlineExceeded):
            raise ApiError(504, str(job.error), "deadline")
        if job.error is not None:
            raise job.error
        return Result(predictions=[[p.as_dict() for p in row] for row in self.classifier.top_k(job.probs, topk)],
                      queue_ms=job.queue_s * 1000, preprocess_ms=preprocess_s * 1000, model_ms=job.model_s * 1000)

    def _overloaded(self, exc: Overloaded) -> None:
        raise ApiError(503, str(exc), exc.reason, {"Retry-After": str(exc.retry_after_s)})
