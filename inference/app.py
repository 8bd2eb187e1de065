"""The HTTP service: `create_app()` builds a Flask app around one Classifier and one Batcher.

Under gunicorn each worker calls `create_app()` after the fork (torch and OpenMP are not fork-safe),
so each worker loads and warms its own model before it takes a request.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import torch
from flask import Flask, Response, g, jsonify, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from inference.batcher import Batcher, BatchStats, DeadlineExceeded, Job, Overloaded
from inference.config import ServiceConfig
from inference.inputs import ApiError, check_count, parse_topk, predict_inputs
from inference.metrics import INFERENCE_ENDPOINTS, Metrics
from inference.model import LABELS, MODEL_NAME, Classifier
from inference.oip import register_oip_routes
from inference.preprocess import ImageError, preprocess

log = logging.getLogger("inference")


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


class InferenceState:
    """What one worker holds: the settings, the model, the batcher, the metrics and the draining flag."""

    def __init__(self, config: ServiceConfig, classifier: Classifier, metrics: Metrics):
        self.config = config
        self.classifier = classifier
        self.metrics = metrics
        self.draining = False
        self.batcher = Batcher(classifier.probabilities, config.max_batch_size, config.max_batch_delay_ms / 1000.0,
                               config.queue_limit, on_batch=self._on_batch, on_depth=metrics.queue_depth.set,
                               on_expired=self._on_expired)

    def _on_batch(self, stats: BatchStats) -> None:
        self.metrics.batch_size.observe(stats.size)
        self.metrics.model_duration.observe(stats.model_s)
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
            job = self.batcher.submit(torch.stack(tensors), g.started_monotonic + self.config.request_timeout_s,
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
        raise ApiError(503, str(exc), exc.reason, {"Retry-After": "1"})


# --- the app ---

def create_app(config: ServiceConfig | None = None, classifier: Classifier | None = None,
               registry: CollectorRegistry | None = None) -> Flask:
    """Build the service. Config comes from the environment unless given; tests pass a fresh registry."""
    config = config or ServiceConfig.from_env()
    torch.set_num_threads(config.torch_threads_effective)
    classifier = classifier or Classifier(config.model_weights, config.device, config.model_backend,
                                          config.model_precision, config.torch_threads_effective,
                                          config.model_cache_dir or None)

    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    state = InferenceState(config, classifier, metrics)
    state.batcher.start(prepare=lambda: classifier.warm_up(config.warmup_batches, config.max_batch_size),
                        nice=config.model_thread_nice)
    metrics.start_cpu_sampler()
    metrics.model_info.labels(MODEL_NAME, classifier.weights, str(classifier.device), classifier.backend,
                              classifier.precision).set(1)
    metrics.workers.set(1)

    app = Flask("inference")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False
    app.extensions["inference"] = state

    @app.before_request
    def start_timer() -> None:
        g.started_monotonic = time.monotonic()
        g.endpoint = request.url_rule.rule if request.url_rule is not None else None
        if g.endpoint in INFERENCE_ENDPOINTS:
            metrics.inflight.inc()

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = g.get("endpoint")
        if endpoint in INFERENCE_ENDPOINTS:
            metrics.requests.labels(endpoint, str(response.status_code)).inc()
            metrics.duration.labels(endpoint).observe(time.monotonic() - g.started_monotonic)
        return response

    @app.teardown_request
    def done(_exc: BaseException | None) -> None:
        if g.get("endpoint") in INFERENCE_ENDPOINTS:
            metrics.inflight.dec()

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        if exc.reason:
            metrics.rejected.labels(exc.reason).inc()
        return jsonify(error=exc.message), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            metrics.rejected.labels("too_large").inc()
            if (request.content_length or 0) > config.max_body_bytes:
                message = f"the request body is over {config.max_body_bytes} bytes (MAX_BODY_BYTES)"
            else:  # werkzeug's multipart limits (parts, size of one field)
                message = f"the multipart body is too large to parse: {exc.description}"
        elif exc.code == 404:
            message = f"no such endpoint: {request.method} {request.path}; see GET /info for the API"
        elif exc.code == 405:
            message = f"{request.method} is not allowed on {request.path}"
        else:
            message = exc.description or exc.name
        response = exc.get_response()
        response.set_data(jsonify(error=message).get_data())
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error=f"internal error ({type(exc).__name__}); the service log has the details"), 500

    # --- the service's own API ---

    @app.post("/predict")
    def predict():
        images, single = predict_inputs()
        result = state.classify(images, parse_topk(request.args.get("topk")))
        body = {"model": MODEL_NAME, "weights": classifier.weights, **classifier.describe(),
                "predictions": result.predictions[0] if single else result.predictions,
                "timings_ms": result.timings()}
        return jsonify(body), 200, {"Server-Timing": result.server_timing()}

    @app.get("/healthz")
    def healthz():
        if not state.batcher.alive() and not state.draining:
            return jsonify(alive=False, error="the model thread has stopped"), 503
        return jsonify(alive=True)

    @app.get("/readyz")
    def readyz():
        if state.draining:
            return jsonify(ready=False, reason="draining"), 503, {"Retry-After": "1"}
        return jsonify(ready=True)

    @app.get("/info")
    def info():
        return jsonify(model=MODEL_NAME, weights=classifier.weights, device=str(classifier.device),
                       **classifier.describe(), labels=len(LABELS), pid=os.getpid(),
                       torch_threads=torch.get_num_threads(), model_threads=classifier.threads,
                       max_batch_size=config.max_batch_size,
                       max_batch_delay_ms=config.max_batch_delay_ms, max_queue=config.queue_limit,
                       request_timeout_s=config.request_timeout_s, max_body_bytes=config.max_body_bytes,
                       max_image_pixels=config.max_image_pixels, draining=state.draining,
                       endpoints=sorted(str(rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"))

    @app.get("/metrics")
    def metrics_endpoint():
        payload, content_type = metrics.exposition()
        return Response(payload, content_type=content_type)

    register_oip_routes(app, state)
    return app
