"""The HTTP API through Flask's test client: the happy paths of both APIs, probes, draining, a full queue, deadlines
and metrics (the table of hostile or unusual inputs is test_service_api_hostile.py).

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
