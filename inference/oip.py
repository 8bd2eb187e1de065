"""The Open Inference Protocol v2 routes: health, metadata and inference, as KServe and Triton clients
(tritonclient.http included) call them. The infer bodies are read and written by inference/oip_codec.py.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from inference.inputs import ApiError, check_count
from inference.model import MODEL_NAME
from inference.oip_codec import HEADER_LENGTH, encode_response, parse_request
from inference.state import InferenceState

MODEL_VERSION = "1"
EXTENSIONS = ["binary_tensor_data", "classification"]
# The model metadata's `platform`, in the names Triton and KServe use for each runtime.
PLATFORMS = {"torch": "pytorch_libtorch", "openvino": "openvino", "onnxruntime": "onnxruntime_onnx"}


def register_oip_routes(app: Flask, state: InferenceState) -> None:
    classifier = state.classifier

    @app.get("/v2")
    def oip_server():
        return jsonify(name="resnet18-inference", version="1", extensions=EXTENSIONS)

    @app.get("/v2/health/live")
    def oip_live():
        return jsonify(live=state.batcher.alive() or state.draining)

    @app.get("/v2/health/ready")
    def oip_ready():
        return jsonify(ready=not state.draining), (503 if state.draining else 200)

    @app.get("/v2/models/<name>")
    def oip_metadata(name: str):
        known_model(name)
        return jsonify(name=MODEL_NAME, versions=[MODEL_VERSION], platform=PLATFORMS[classifier.backend],
                       parameters={"weights": classifier.weights, **classifier.describe()},
                       inputs=[{"name": "image", "datatype": "BYTES", "shape": [-1]}],
                       outputs=[{"name": "label", "datatype": "BYTES", "shape": [-1, -1]},
                                {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
                                {"name": "index", "datatype": "INT64", "shape": [-1, -1]}])

    @app.get("/v2/models/<name>/ready")
    def oip_model_ready(name: str):
        known_model(name)
        return jsonify(name=MODEL_NAME, ready=not state.draining), (503 if state.draining else 200)

    @app.post("/v2/models/resnet18/infer")
    def oip_infer():
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise ApiError(415, f"Content-Encoding {encoding[:20]!r} is not supported; send the body uncompressed",
                           "bad_input")
        # tritonclient sends no Content-Type at all, so the body is read as an infer body whatever it says.
        parsed = parse_request(request.get_data(cache=False), request.headers.get(HEADER_LENGTH),
                               request.args.get("topk"))
        check_count(parsed.count)
        result = state.classify(parsed.images(), parsed.topk)
        answer = {**parsed.echo, "model_name": MODEL_NAME, "model_version": MODEL_VERSION,
                  "parameters": {"weights": classifier.weights, **classifier.describe(),
                                 "timings_ms": result.timings()}}
        body, headers = encode_response(answer, result.predictions, parsed.outputs)
        return Response(body, 200, {**headers, "Server-Timing": result.server_timing()})

    @app.post("/v2/models/<name>/infer")
    def oip_infer_unknown(name: str):
        known_model(name)
        raise ApiError(404, f"no inference route for model {name!r}")

    def known_model(name: str) -> None:
        if name != MODEL_NAME:
            raise ApiError(404, f"unknown model {name!r}; this server serves {MODEL_NAME!r}")
