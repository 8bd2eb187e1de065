"""The service's Prometheus metrics. Their names are a contract: the autoscaler's queries, the
Prometheus rules, the dashboard and the load tester's plots use them (docs/service.md#metrics lists them).

Under gunicorn every worker writes its values to PROMETHEUS_MULTIPROC_DIR and `/metrics` aggregates all
live workers (prometheus_client's multiprocess mode); gauges then say how to combine workers. Without
that variable (tests, a single process) the metrics live in the registry given to `Metrics`.
"""

from __future__ import annotations

import os
import threading
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)

INFERENCE_ENDPOINTS = ("/predict", "/v2/models/resnet18/infer")
REJECT_REASONS = ("queue_full", "draining", "deadline", "too_large", "bad_input")

# 5 ms .. 10 s, dense around 100-500 ms where the SLO and its p95 live.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                     0.6, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, registry: CollectorRegistry | None):
        self.registry = registry
        # In multiprocess mode the values go to files, not to a registry: pass none.
        reg = None if multiprocess_dir() else registry
        self.requests = Counter("inference_requests", "Inference requests answered, by endpoint and HTTP code.",
                                ["endpoint", "code"], registry=reg)
        self.duration = Histogram("inference_request_duration_seconds",
                                  "Time from receiving an inference request to answering it.", ["endpoint"],
                                  buckets=LATENCY_BUCKETS_S, registry=reg)
        self.queue_duration = Histogram("inference_queue_duration_seconds",
                                        "Time an image waited for the model thread.", buckets=STAGE_BUCKETS_S,
                                        registry=reg)
        self.preprocess_duration = Histogram("inference_preprocess_duration_seconds",
                                             "Time to decode and preprocess one request's images.",
                                             buckets=STAGE_BUCKETS_S, registry=reg)
        self.model_duration = Histogram("inference_model_duration_seconds", "Time of one forward over a batch.",
                                        buckets=STAGE_BUCKETS_S, registry=reg)
        self.batch_size = Histogram("inference_batch_size", "Images per forward.", buckets=BATCH_BUCKETS,
                                    registry=reg)
        self.inflight = Gauge("inference_inflight_requests", "Inference requests being handled now.",
                              multiprocess_mode="livesum", registry=reg)
        self.queue_depth = Gauge("inference_queue_depth", "Images waiting for the model.",
                                 multiprocess_mode="livesum", registry=reg)
        self.rejected = Counter("inference_rejected", "Requests refused, by reason.", ["reason"], registry=reg)
        self.quota_wait = Counter("inference_cpu_quota_wait_seconds", "Time the model thread waited before "
                                  "forwards to keep its worker within its CPU quota.", registry=reg)
        self.worker_cpu = Counter("inference_worker_cpu_seconds", "CPU time used by the worker processes; one "
                                  "worker is one CPU of capacity.", registry=reg)
        self.workers = Gauge("inference_workers", "Live workers with the model loaded and warmed up.",
                             multiprocess_mode="livesum", registry=reg)
        self.model_info = Gauge("inference_model_info", "The model being served (value is always 1).",
                                ["model", "weights", "device", "backend", "precision"],
                                multiprocess_mode="livemax", registry=reg)
        for reason in REJECT_REASONS:  # export zeros so rate() and alerts see every reason from the start
            self.rejected.labels(reason)
        self._cpu_lock = threading.Lock()
        self._cpu_seen_s = time.process_time()

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answer of an inference endpoint, whatever answered it (Flask, or the refusal layer)."""
        self.requests.labels(endpoint, str(status)).inc()
        self.duration.labels(endpoint).observe(seconds)

    def record_cpu(self) -> None:
        """Add the CPU this process used since the last call (process_time covers all its threads)."""
        with self._cpu_lock:
            now = time.process_time()
            self.worker_cpu.inc(max(0.0, now - self._cpu_seen_s))
            self._cpu_seen_s = now

    def start_cpu_sampler(self, interval_s: float = 1.0) -> None:
        def loop() -> None:
            while True:
                time.sleep(interval_s)
                self.record_cpu()
        threading.Thread(target=loop, name="cpu-sampler", daemon=True).start()

    def exposition(self) -> tuple[bytes, str]:
        """The text format for /metrics: every live worker's values when running under gunicorn."""
        self.record_cpu()
        path = multiprocess_dir()
        if path:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
