"""The cheapest 503: a WSGI layer in front of Flask refuses an inference request the worker has no room for,
before a request object, routing, hooks or a byte of the body.

Under overload a worker refuses about as many requests as it serves, on the core its forwards need, so what a
refusal costs comes out of what is served. Through Flask one took 0.36 ms of CPU on a Sapphire Rapids core;
here 0.21 ms, most of it gunicorn's and the kernel's (docs/benchmarks.md). The answer and its metrics are the
ones Flask would give: the JSON error with Retry-After, `inference_rejected_total` and the endpoint's
request count and duration. Everything else is Flask's, and `InferenceState.classify` decides admission
again, with the request's image count, once the body is parsed.
"""

from __future__ import annotations

import time

from flask import Flask

from inference.inputs import ApiError
from inference.metrics import INFERENCE_ENDPOINTS
from inference.state import InferenceState


def refuse_before_flask(app: Flask, state: InferenceState) -> None:
    """Put the refusal in front of `app`'s WSGI callable (test clients go through it too)."""
    flask_app = app.wsgi_app

    def wsgi_app(environ, start_response):
        endpoint = environ.get("PATH_INFO")
        if endpoint in INFERENCE_ENDPOINTS and environ.get("REQUEST_METHOD") == "POST":
            started = time.monotonic()
            try:
                state.check_room()
            except ApiError as exc:
                state.metrics.rejected.labels(exc.reason).inc()
                response = exc.response()
                state.metrics.answered(endpoint, response.status_code, time.monotonic() - started)
                return response(environ, start_response)
        return flask_app(environ, start_response)

    app.wsgi_app = wsgi_app
