"""The HTTP service: `create_app()` builds a Flask app around one Classifier and one Batcher.

Under gunicorn each worker calls `create_app()` after the fork (the backends' thread pools are not fork-safe),
so each worker loads and warms its own model before it takes a request.
"""

from __future__ import annotations

import logging
import os
import time

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from inference.config import ServiceConfig
from inference.inputs import ApiError, error_body, parse_topk, predict_inputs
from inference.metrics import INFERENCE_ENDPOINTS, Metrics
from inference.model import LABELS, MODEL_NAME, Classifier
from inference.oip import register_oip_routes
from inference.refusal import refuse_before_flask
from inference.state import InferenceState

log = logging.getLogger("inference")


def create_app(config: ServiceConfig | None = None, classifier: Classifier | None = None,
               registry: CollectorRegistry | None = None) -> Flask:
    """Build the service. Config comes from the environment unless given; tests pass a fresh registry."""
    config = config or ServiceConfig.from_env()
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
            metrics.answered(endpoint, response.status_code, time.monotonic() - g.started_monotonic)
        return response

    @app.teardown_request
    def done(_exc: BaseException | None) -> None:
        if g.get("endpoint") in INFERENCE_ENDPOINTS:
            metrics.inflight.dec()

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        if exc.reason:
            metrics.rejected.labels(exc.reason).inc()
        return exc.response()

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
        response.set_data(error_body(message))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return ApiError(500, f"internal error ({type(exc).__name__}); the service log has the details").response()

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
                       torch_threads=classifier.threads, model_threads=classifier.threads,
                       max_batch_size=config.max_batch_size,
                       max_batch_delay_ms=config.max_batch_delay_ms, max_queue=config.queue_limit,
                       max_queue_wait_ms=config.max_queue_wait_ms,
                       request_timeout_s=config.request_timeout_s, max_body_bytes=config.max_body_bytes,
                       max_image_pixels=config.max_image_pixels, draining=state.draining,
                       endpoints=sorted(str(rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"))

    @app.get("/metrics")
    def metrics_endpoint():
        payload, content_type = metrics.exposition()
        return Response(payload, content_type=content_type)

    register_oip_routes(app, state)
    refuse_before_flask(app, state)
    return app
