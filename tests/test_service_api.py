"""The HTTP API through Flask's test client: the happy paths, and a table of hostile or unusual inputs.

Every app here has random weights and its own metrics registry.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import pytest

from tests import images
from tests.support import REPO, wait_until

B64 = base64.b64encode(images.jpeg()).decode()


def raw(data: bytes, content_type: str = "image/jpeg") -> dict:
    return {"data": data, "content_type": content_type}


def multipart(*files: bytes, field: str = "file") -> dict:
    return {"data": {field: [(io.BytesIO(f), f"img{i}.jpg") for i, f in enumerate(files)]},
            "content_type": "multipart/form-data"}


def multipart_body(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary", end: bool = True,
                   content_type: str | None = None) -> dict:
    """A multipart/form-data body built by hand: (field name, filename or None for a text field, bytes)."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode() if end else b""
    return {"data": body, "content_type": content_type or f"multipart/form-data; boundary={boundary}"}


def as_json(body: object) -> dict:
    return {"data": json.dumps(body), "content_type": "application/json"}


def metric_value(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        series, _, label_text = key.partition("{")
        if series == name and ",".join(sorted(label_text.rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


# (id, settings overrides, method, path, request kwargs, expected status, expected rejection reason)
HOSTILE = [
    ("empty-raw-body", {}, "post", "/predict", raw(b""), 400, "bad_input"),
    ("random-bytes", {}, "post", "/predict", raw(bytes(range(256)) * 8), 400, "bad_input"),
    ("truncated-jpeg", {}, "post", "/predict", raw(images.truncated_jpeg()), 400, "bad_input"),
    ("corrupt-png-pixels", {}, "post", "/predict", raw(images.corrupt_png(), "image/png"), 400, "bad_input"),
    ("text-as-image", {}, "post", "/predict", raw(b"hello, I am not a picture", "image/png"), 400, "bad_input"),
    ("decompression-bomb-header", {}, "post", "/predict", raw(images.bomb_png(), "image/png"), 413, "too_large"),
    ("over-pixel-limit", {"max_image_pixels": 10_000}, "post", "/predict", raw(images.jpeg()), 413, "too_large"),
    ("oversize-body", {"max_body_bytes": 1000}, "post", "/predict", raw(images.jpeg()), 413, "too_large"),
    ("oversize-multipart", {"max_body_bytes": 1000}, "post", "/predict", multipart(images.jpeg()), 413, "too_large"),
    ("bad-base64", {}, "post", "/predict", as_json({"image": "***not base64***"}), 400, "bad_input"),
    ("base64-of-garbage", {}, "post", "/predict", as_json({"image": base64.b64encode(b"xx").decode()}), 400,
     "bad_input"),
    ("base64-not-a-string", {}, "post", "/predict", as_json({"image": 42}), 400, "bad_input"),
    ("malformed-json", {}, "post", "/predict", {"data": "{\"image\": ", "content_type": "application/json"}, 400,
     "bad_input"),
    ("json-array", {}, "post", "/predict", as_json([B64]), 400, "bad_input"),
    ("json-nested-200000-deep", {}, "post", "/predict",
     {"data": "[" * 200_000, "content_type": "application/json"}, 400, "bad_input"),
    ("topk-huge-number", {}, "post", "/predict?topk=" + "9" * 5000, raw(images.jpeg()), 400, "bad_input"),
    ("too-many-tiny-images", {"max_queue": 8, "max_batch_size": 8}, "post", "/predict",
     as_json({"images": ["AA=="] * 100_000}), 413, "too_large"),
    ("oip-not-json", {}, "post", "/v2/models/resnet18/infer", raw(images.jpeg()), 400, "bad_input"),
    ("json-without-image", {}, "post", "/predict", as_json({"picture": B64}), 400, "bad_input"),
    ("json-empty-images", {}, "post", "/predict", as_json({"images": []}), 400, "bad_input"),
    ("json-images-not-list", {}, "post", "/predict", as_json({"images": B64}), 400, "bad_input"),
    ("multipart-wrong-field", {}, "post", "/predict", multipart(images.jpeg(), field="image"), 400, "bad_input"),
    ("multipart-text-part-not-an-image", {}, "post", "/predict", multipart_body(("file", None, b"hello")), 400,
     "bad_input"),
    ("multipart-without-boundary", {}, "post", "/predict",
     multipart_body(("file", "a.jpg", images.jpeg()), content_type="multipart/form-data"), 400, "bad_input"),
    ("multipart-other-boundary", {}, "post", "/predict",
     multipart_body(("file", "a.jpg", images.jpeg()), content_type="multipart/form-data; boundary=elsewhere"), 400,
     "bad_input"),
    ("multipart-truncated", {}, "post", "/predict", multipart_body(("file", "a.jpg", images.jpeg()), end=False), 400,
     "bad_input"),
    ("multipart-empty-body", {}, "post", "/predict", {"data": b"", "content_type": "multipart/form-data; boundary=x"},
     400, "bad_input"),
    ("multipart-empty-file", {}, "post", "/predict", multipart_body(("file", "a.jpg", b"")), 400, "bad_input"),
    ("multipart-too-many-parts", {"max_queue": 8, "max_batch_size": 8}, "post", "/predict",
     multipart_body(*[("note", None, b"x")] * 30), 413, "too_large"),
    ("multipart-too-many-files", {"max_queue": 8, "max_batch_size": 8}, "post", "/predict",
     multipart_body(*[("file", "a.png", images.png((8, 8)))] * 9), 413, "too_large"),
    ("topk-zero", {}, "post", "/predict?topk=0", raw(images.jpeg()), 400, "bad_input"),
    ("topk-too-big", {}, "post", "/predict?topk=1001", raw(images.jpeg()), 400, "bad_input"),
    ("topk-not-int", {}, "post", "/predict?topk=five", raw(images.jpeg()), 400, "bad_input"),
    ("text-plain", {}, "post", "/predict", raw(b"abc", "text/plain"), 415, "bad_input"),
    ("no-content-type", {}, "post", "/predict", {"data": images.jpeg()}, 415, "bad_input"),
    ("too-many-images", {"max_queue": 8, "max_batch_size": 8}, "post", "/predict",
     as_json({"images": [B64] * 9}), 413, "too_large"),
    ("get-predict", {}, "get", "/predict", {}, 405, None),
    ("unknown-path", {}, "get", "/predikt", {}, 404, None),
    ("oip-not-bytes", {}, "post", "/v2/models/resnet18/infer",
     as_json({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [B64]}]}), 400, "bad_input"),
    ("oip-no-inputs", {}, "post", "/v2/models/resnet18/infer", as_json({"id": "x"}), 400, "bad_input"),
    ("oip-shape-mismatch", {}, "post", "/v2/models/resnet18/infer",
     as_json({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [3], "data": [B64]}]}), 400, "bad_input"),
    ("oip-unknown-model", {}, "post", "/v2/models/vgg16/infer", as_json({"inputs": []}), 404, None),
    ("oip-unknown-model-metadata", {}, "get", "/v2/models/vgg16", {}, 404, None),
    # Unusual but valid: each must classify.
    ("cmyk-jpeg", {}, "post", "/predict", raw(images.cmyk_jpeg()), 200, None),
    ("grayscale-jpeg", {}, "post", "/predict", raw(images.grayscale_jpeg()), 200, None),
    ("16-bit-png", {}, "post", "/predict", raw(images.png16(), "image/png"), 200, None),
    ("animated-gif", {}, "post", "/predict", raw(images.animated_gif(), "image/gif"), 200, None),
    ("exif-rotated-jpeg", {}, "post", "/predict", raw(images.exif_rotated_jpeg()), 200, None),
    ("palette-png-transparency", {}, "post", "/predict", raw(images.palette_png_with_transparency(), "image/png"),
     200, None),
    ("rgba-png", {}, "post", "/predict", raw(images.png(mode="RGBA"), "image/png"), 200, None),
    ("one-bit-bmp", {}, "post", "/predict", raw(images.encode(images.photo().convert("1"), "BMP"), "image/bmp"),
     200, None),
    ("tiff", {}, "post", "/predict", raw(images.encode(images.photo(), "TIFF"), "image/tiff"), 200, None),
    ("one-pixel", {}, "post", "/predict", raw(images.png((1, 1)), "image/png"), 200, None),
    ("thin-strip-40000x1", {}, "post", "/predict", raw(images.png((40_000, 1)), "image/png"), 200, None),
    ("octet-stream", {}, "post", "/predict", raw(images.jpeg(), "application/octet-stream"), 200, None),
    ("multipart-file-among-text-fields", {}, "post", "/predict",
     multipart_body(("note", None, b"hello"), ("file", "a.jpg", images.jpeg()), ("topk", None, b"3")), 200, None),
    ("multipart-part-without-filename", {}, "post", "/predict", multipart_body(("file", None, images.jpeg())), 200,
     None),
    ("multipart-rfc5987-filename-only", {}, "post", "/predict",
     {"data": b"--bb\r\nContent-Disposition: form-data; name=\"file\"; filename*=utf-8''n%C3%A4me.jpg\r\n\r\n"
      + images.jpeg() + b"\r\n--bb--\r\n", "content_type": "multipart/form-data; boundary=bb"}, 200, None),
    ("multipart-quoted-boundary", {}, "post", "/predict",
     multipart_body(("file", "a.jpg", images.jpeg()), boundary="a b:c",
                    content_type='multipart/form-data; boundary="a b:c"'), 200, None),
    ("wrong-image-subtype", {}, "post", "/predict", raw(images.png(), "image/jpeg"), 200, None),
    ("data-url-base64", {}, "post", "/predict", as_json({"image": "data:image/jpeg;base64," + B64}), 200, None),
    ("base64-with-newlines", {}, "post", "/predict",
     as_json({"image": "\n".join(B64[i:i + 76] for i in range(0, len(B64), 76))}), 200, None),
]


@pytest.mark.parametrize("overrides, method, path, kwargs, status, reason",
                         [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_unusual_input_gets_the_right_status(make_app, overrides, method, path, kwargs, status, reason):
    client = make_app(**overrides).test_client()
    before = metric_value(client, "inference_rejected_total", reason=reason) if reason else 0.0
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict), "every answer is JSON"
    if status >= 400:
        assert isinstance(body.get("error"), str) and len(body["error"]) > 10, body
    else:
        assert body["predictions"], body
    if reason:
        assert metric_value(client, "inference_rejected_total", reason=reason) == before + 1
    # The worker is still fine afterwards (a tiny image fits even the strictest limits above).
    assert client.post("/predict", **raw(images.png((8, 8)), "image/png")).status_code == 200


def test_predict_multipart_single_image(client):
    response = client.post("/predict?topk=3", **multipart(images.jpeg()))
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"] == "resnet18" and body["weights"] == "random"
    assert [sorted(p) for p in body["predictions"]] == [["index", "label", "score"]] * 3
    scores = [p["score"] for p in body["predictions"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    assert set(body["timings_ms"]) == {"queue", "preprocess", "model"}
    assert response.headers["Server-Timing"].startswith("queue;dur=")


@pytest.mark.parametrize("kwargs, count", [
    (lambda: multipart(images.jpeg(seed=1), images.png(), images.jpeg(seed=2)), 3),
    (lambda: as_json({"images": [B64, B64]}), 2),
    (lambda: as_json({"images": [B64]}), 1),
], ids=["multipart-three-files", "json-two-images", "json-list-of-one"])
def test_several_images_give_a_list_per_image(client, kwargs, count):
    response = client.post("/predict?topk=2", **kwargs())
    assert response.status_code == 200, response.get_data(as_text=True)
    predictions = response.get_json()["predictions"]
    assert len(predictions) == count and all(len(row) == 2 for row in predictions)


def test_same_image_same_answer_whatever_the_encoding(client):
    data = images.jpeg()
    answers = [client.post("/predict", **raw(data)).get_json()["predictions"],
               client.post("/predict", **multipart(data)).get_json()["predictions"],
               client.post("/predict", **as_json({"image": base64.b64encode(data).decode()})).get_json()["predictions"]]
    assert answers[0] == answers[1] == answers[2]


def test_topk_1000_returns_every_class(client):
    predictions = client.post("/predict?topk=1000", **raw(images.jpeg())).get_json()["predictions"]
    assert len(predictions) == 1000
    assert len({p["index"] for p in predictions}) == 1000


@pytest.mark.parametrize("path, status, key, value", [
    ("/healthz", 200, "alive", True),
    ("/readyz", 200, "ready", True),
    ("/v2/health/live", 200, "live", True),
    ("/v2/health/ready", 200, "ready", True),
    ("/v2/models/resnet18/ready", 200, "ready", True),
    ("/v2/models/resnet18", 200, "name", "resnet18"),
    ("/info", 200, "weights", "random"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_probe_and_info_endpoints(client, path, status, key, value):
    response = client.get(path)
    assert response.status_code == status
    assert response.get_json()[key] == value


def test_draining_worker_is_not_ready_but_answers_what_reaches_it(make_app):
    app = make_app()
    client = app.test_client()
    app.extensions["inference"].start_draining()
    assert client.get("/readyz").status_code == 503
    assert client.get("/v2/health/ready").status_code == 503
    assert client.post("/predict", **raw(images.jpeg())).status_code == 200, "a request already inside is served"
    assert client.get("/healthz").status_code == 200, "draining is not dead: liveness must stay green"


def test_stopped_worker_refuses_with_503_and_retry_after(make_app):
    app = make_app()
    client = app.test_client()
    app.extensions["inference"].stop(timeout_s=10)
    response = client.post("/predict", **raw(images.jpeg()))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "shutting down" in response.get_json()["error"]
    assert metric_value(client, "inference_rejected_total", reason="draining") == 1


# A worker with no room refuses an inference request in front of Flask, before the body is read: what is
# uploaded does not matter. Everything else still reaches Flask, which answers as it always does.
@pytest.mark.parametrize("method, path, body, status, counted", [
    ("POST", "/predict", b"not an image", 503, True),
    ("POST", "/v2/models/resnet18/infer", b"{not json", 503, True),
    ("POST", "/v2/models/other/infer", b"{}", 404, False),
    ("POST", "/predict/", b"", 404, False),
    ("GET", "/predict", None, 405, False),
], ids=["predict-any-body", "v2-infer-any-body", "v2-unknown-model-is-flasks-404", "other-path-is-flasks-404",
        "other-method-is-flasks-405"])
def test_a_worker_without_room_refuses_before_flask_reads_the_body(make_app, method, path, body, status, counted):
    app = make_app()
    client = app.test_client()
    app.extensions["inference"].stop(timeout_s=10)
    response = client.open(path, method=method, data=body, content_type="application/octet-stream")
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]
    assert (response.headers.get("Retry-After") == "1") is counted
    assert metric_value(client, "inference_rejected_total", reason="draining") == (1 if counted else 0)
    if counted:
        assert metric_value(client, "inference_requests_total", endpoint=path, code="503") == 1
        assert metric_value(client, "inference_request_duration_seconds_count", endpoint=path) == 1


def test_full_queue_answers_503_at_once(make_app):
    import threading

    import torch

    app = make_app(max_queue=8, max_batch_size=8)
    state = app.extensions["inference"]
    release = threading.Event()
    forward = state.batcher._run_batch
    state.batcher._run_batch = lambda batch: release.wait(30) and forward(batch)
    client = app.test_client()
    try:
        images_8 = torch.zeros((8, 224, 224, 3), dtype=torch.uint8)
        running = state.batcher.submit(images_8, deadline=float("inf"))  # the model thread takes this one...
        wait_until(lambda: state.batcher.depth == 0, timeout_s=30, what="the model thread to take the first job")
        waiting = state.batcher.submit(images_8, deadline=float("inf"))  # ...and this one fills the queue
        response = client.post("/predict", **raw(images.jpeg()))
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert "queue is full" in response.get_json()["error"]
        # Refused before the body is read: a body that would be a 400 is not even parsed.
        for path, body, kind in (("/predict", b"--x\r\nbroken", "multipart/form-data; boundary=x"),
                                 ("/v2/models/resnet18/infer", b"{not json", "application/json")):
            refused = client.post(path, data=body, content_type=kind)
            assert refused.status_code == 503 and "queue is full" in refused.get_json()["error"], path
        assert metric_value(client, "inference_rejected_total", reason="queue_full") == 3
    finally:
        release.set()
    assert running.done.wait(30) and waiting.done.wait(30)
    assert client.post("/predict", **raw(images.jpeg())).status_code == 200


def test_a_request_predicted_to_wait_past_the_budget_gets_503_with_retry_after(make_app):
    """Admission by time: the batcher is taught a slow CPU's 0.5 s per image (as its forwards would teach it),
    so a forward of 8 just started, 16 queued images (two full batches) and the request's own forward predict
    its forward to end in about 16 s, 8 s over a budget of two batches."""
    import threading

    import torch

    app = make_app(max_queue_wait_ms=100)
    state = app.extensions["inference"]
    state.batcher._learn(0.0, 4.0, 8)
    release = threading.Event()
    forward = state.batcher._run_batch
    state.batcher._run_batch = lambda batch: release.wait(30) and forward(batch)
    client = app.test_client()
    try:
        running = state.batcher.submit(torch.zeros((8, 224, 224, 3), dtype=torch.uint8), deadline=float("inf"))
        wait_until(lambda: state.batcher.depth == 0, timeout_s=30, what="the model thread to take the first job")
        waiting = state.batcher.submit(torch.zeros((16, 224, 224, 3), dtype=torch.uint8), deadline=float("inf"))
        response = client.post("/predict", **raw(images.jpeg()))
        assert response.status_code == 503, response.get_json()
        assert response.headers["Retry-After"] in ("7", "8")
        assert "MAX_QUEUE_WAIT_MS" in response.get_json()["error"]
        assert metric_value(client, "inference_rejected_total", reason="queue_full") == 1
    finally:
        release.set()
    assert running.done.wait(30) and waiting.done.wait(30)


def test_request_past_its_deadline_is_dropped_with_504(make_app):
    import threading

    import torch

    app = make_app(request_timeout_s=0.2, graceful_timeout_s=5)
    state = app.extensions["inference"]
    release = threading.Event()
    forward = state.batcher._run_batch
    computed = []
    state.batcher._run_batch = lambda batch: (release.wait(30), computed.append(len(batch)), forward(batch))[2]
    client = app.test_client()
    blocker = state.batcher.submit(torch.zeros((1, 224, 224, 3), dtype=torch.uint8), deadline=float("inf"))
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=client.post("/predict", **raw(images.jpeg()))))
    thread.start()
    # The request waits behind the blocked forward until well past its 0.2 s deadline.
    wait_until(lambda: state.batcher.depth == 1, timeout_s=30, what="the request to be queued")
    import time

    time.sleep(0.3)  # let the deadline pass: the condition under test is time itself
    release.set()
    thread.join(30)
    assert blocker.done.is_set()
    assert result["r"].status_code == 504, result["r"].get_data(as_text=True)
    assert computed == [1], "the expired request must not reach the model"
    assert metric_value(client, "inference_rejected_total", reason="deadline") == 1


def test_oip_infer_returns_labels_scores_and_indices(client):
    body = {"id": "req-1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [B64, B64]}],
            "parameters": {"topk": 3}}
    response = client.post("/v2/models/resnet18/infer", **as_json(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["id"] == "req-1" and answer["model_name"] == "resnet18"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert set(outputs) == {"label", "score", "index"}
    for output in outputs.values():
        assert output["shape"] == [2, 3] and len(output["data"]) == 6
    assert outputs["label"]["datatype"] == "BYTES" and outputs["score"]["datatype"] == "FP32"


def test_metrics_count_requests_by_endpoint_and_code(client, classifier):
    client.post("/predict", **raw(images.jpeg()))
    client.post("/predict", **raw(b""))
    client.get("/healthz")
    assert metric_value(client, "inference_requests_total", endpoint="/predict", code="200") == 1
    assert metric_value(client, "inference_requests_total", endpoint="/predict", code="400") == 1
    assert metric_value(client, "inference_request_duration_seconds_count", endpoint="/predict") == 2
    assert metric_value(client, "inference_batch_size_count") == 1
    assert metric_value(client, "inference_workers") == 1
    assert metric_value(client, "inference_model_info", model="resnet18", weights="random", device="cpu",
                        backend=classifier.backend, precision=classifier.precision) == 1
    assert metric_value(client, "inference_inflight_requests") == 0


def test_a_foreign_multipart_module_is_refused_at_import(tmp_path):
    """python-multipart's old module name shadowing the multipart package fails the import, with the fix."""
    (tmp_path / "multipart.py").write_text("class MultipartParser:\n    pass\n")
    done = subprocess.run([sys.executable, "-c", "import inference.inputs"], cwd=REPO, capture_output=True,
                          text=True, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode != 0
    assert "pip install 'multipart>=2.0.1,<3'" in done.stderr and str(tmp_path) in done.stderr
