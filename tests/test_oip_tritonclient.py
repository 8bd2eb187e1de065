"""Triton's own Python client (tritonclient.http) against the real service under gunicorn on 127.0.0.1:
health, metadata, and inference in every combination of JSON and binary tensor data, checked against what
/predict answers for the same photos; then every malformed body, sent as raw bytes, gets a 400 naming it.
"""

from __future__ import annotations

import base64
import gzip

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from inference.config import ServiceConfig
from inference.oip_codec import HEADER_LENGTH
from tests.support import REPO, start_gunicorn
from tests.test_oip_codec import GOOD_JSON, MALFORMED, binary_input, packed, with_binary

PHOTOS = [path.read_bytes() for path in sorted((REPO / "loadtester" / "images").glob("*.jpg"))]
OUTPUTS = ("label", "score", "index")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    child = start_gunicorn(tmp_path_factory.mktemp("oip"), workers=1)  # one worker: one model for every answer
    yield child
    child.stop()


@pytest.fixture(scope="module")
def url(server) -> str:
    return server.extra["url"]


@pytest.fixture(scope="module")
def client(server):
    triton = httpclient.InferenceServerClient(f"127.0.0.1:{server.extra['port']}", network_timeout=120.0)
    yield triton
    triton.close()


@pytest.fixture(scope="module")
def predicted(url) -> list[list[dict]]:
    """/predict's top-5 for every photo, the reference the v2 answers must equal."""
    files = [("file", (f"{i}.jpg", photo, "image/jpeg")) for i, photo in enumerate(PHOTOS)]
    response = requests.post(f"{url}/predict", files=files, timeout=120)
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert len({row[0]["score"] for row in rows}) > 1, "the photos must score differently, or a mix-up would pass"
    return rows


def image_input(photos: list[bytes], binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput("image", [len(photos)], "BYTES")
    # JSON carries text only: there the photos travel as base64, in binary tensor data as their raw bytes.
    data = photos if binary else [base64.b64encode(photo).decode() for photo in photos]
    return tensor.set_data_from_numpy(np.array(data, dtype=object), binary_data=binary)


def requested(names, binary: bool) -> list[httpclient.InferRequestedOutput]:
    return [httpclient.InferRequestedOutput(name, binary_data=binary) for name in names]


def text(values: np.ndarray) -> list:
    """BYTES elements as str: tritonclient gives str from JSON and bytes from binary data."""
    return [v.decode() if isinstance(v, bytes) else v for v in values.ravel()]


def assert_matches_predict(result, rows: list[list[dict]], names=OUTPUTS) -> None:
    k = len(rows[0])
    want = {"index": [[p["index"] for p in row] for row in rows],
            "score": [[p["score"] for p in row] for row in rows],
            "label": [[p["label"] for p in row] for row in rows]}
    for name in names:
        got = result.as_numpy(name)
        assert got is not None and got.shape == (len(rows), k), (name, got)
        if name == "label":
            assert text(got) == [label for row in want["label"] for label in row]
        elif name == "index":
            assert got.dtype == np.int64 and got.tolist() == want["index"]
        else:
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, np.array(want["score"], dtype=np.float32), rtol=1e-4, atol=1e-6)


def test_health_readiness_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("resnet18") and not client.is_model_ready("vgg16")
    assert {"binary_tensor_data", "classification"} <= set(client.get_server_metadata()["extensions"])
    metadata = client.get_model_metadata("resnet18")
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in metadata["outputs"]] == list(OUTPUTS)


# (id, binary input, outputs: "json" or "binary" for every output named, "default" for none named)
COMBINATIONS = [
    ("json-in-json-out", False, "json"),
    ("json-in-binary-out", False, "binary"),
    ("binary-in-json-out", True, "json"),
    ("binary-in-binary-out", True, "binary"),
    ("json-in-default-out", False, "default"),
    ("binary-in-default-out", True, "default"),
]


@pytest.mark.parametrize("binary_in, out", [c[1:] for c in COMBINATIONS], ids=[c[0] for c in COMBINATIONS])
def test_every_photo_in_one_request_gives_what_predict_gives(client, predicted, binary_in, out):
    outputs = None if out == "default" else requested(OUTPUTS, out == "binary")
    result = client.infer("resnet18", [image_input(PHOTOS, binary_in)], outputs=outputs)
    answer = result.get_response()
    # Without a list tritonclient asks for every output as binary data (binary_data_output).
    binary_out = out != "json"
    assert all(("binary_data_size" in o.get("parameters", {})) == binary_out for o in answer["outputs"]), answer
    assert_matches_predict(result, predicted)


@pytest.mark.parametrize("count", [1, 2, 5], ids=lambda n: f"{n}-photos")
def test_batches_of_several_photos(client, predicted, count):
    result = client.infer("resnet18", [image_input(PHOTOS[-count:], True)])
    assert_matches_predict(result, predicted[-count:])


# (id, outputs asked for, each as binary data or not)
SUBSETS = [
    ("index-only-binary", [("index", True)]),
    ("label-only-json", [("label", False)]),
    ("score-and-label-mixed", [("score", True), ("label", False)]),
    ("index-then-score-json", [("index", False), ("score", False)]),
]


@pytest.mark.parametrize("asked", [c[1] for c in SUBSETS], ids=[c[0] for c in SUBSETS])
def test_only_the_outputs_asked_for_come_back(client, predicted, asked):
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name, binary in asked]
    result = client.infer("resnet18", [image_input(PHOTOS[:2], True)], outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == [name for name, _ in asked]
    assert_matches_predict(result, predicted[:2], names=[name for name, _ in asked])


def test_topk_parameter_and_request_id(client, predicted):
    result = client.infer("resnet18", [image_input(PHOTOS[:3], True)], request_id="req-42", parameters={"topk": 2},
                          response_compression_algorithm="gzip")  # the server may answer uncompressed
    assert result.get_response()["id"] == "req-42"
    assert_matches_predict(result, [row[:2] for row in predicted[:3]])


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_class_count_gives_tritons_classification_strings(client, predicted, binary_out):
    outputs = [httpclient.InferRequestedOutput("score", binary_data=binary_out, class_count=3),
               httpclient.InferRequestedOutput("index", binary_data=binary_out)]
    result = client.infer("resnet18", [image_input(PHOTOS[:2], True)], outputs=outputs)
    classes = result.as_numpy("score")
    assert classes.shape == (2, 3)
    parsed = [entry.split(":", 2) for entry in text(classes)]
    want = [p for row in predicted[:2] for p in row[:3]]
    assert [(int(index), label) for _, index, label in parsed] == [(p["index"], p["label"]) for p in want]
    np.testing.assert_allclose([float(score) for score, _, _ in parsed], [p["score"] for p in want], atol=2e-6)
    assert result.as_numpy("index").tolist() == [[p["index"] for p in row[:3]] for row in predicted[:2]]


def test_a_compressed_request_is_refused_clearly(client):
    with pytest.raises(InferenceServerException) as raised:
        client.infer("resnet18", [image_input(PHOTOS[:1], True)], request_compression_algorithm="gzip")
    assert raised.value.status() == "415" and "Content-Encoding 'gzip'" in raised.value.message()


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"],
                         ids=["none", "json", "text-plain", "form-urlencoded", "multipart"])
def test_a_json_body_is_read_whatever_its_content_type(url, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(f"{url}/v2/models/resnet18/infer", data=GOOD_JSON, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert [o["name"] for o in response.json()["outputs"]] == list(OUTPUTS)


# One more than the default MAX_QUEUE (the service's own default, so the case follows it).
TOO_MANY_COUNT = ServiceConfig().queue_limit + 1
TOO_MANY = packed(*[b"x"] * TOO_MANY_COUNT)

# (id, path, (body, Inference-Header-Content-Length), extra headers, status, a phrase the error must contain)
BAD_REQUESTS = [(case_id, "/v2/models/resnet18/infer", body, {}, 400, phrase) for case_id, body, phrase in MALFORMED]
BAD_REQUESTS += [
    ("not-an-image", "/v2/models/resnet18/infer",
     with_binary({"inputs": [binary_input(packed(b"hello"))]}, packed(b"hello")), {}, 400, "not an image format"),
    ("too-many-images", "/v2/models/resnet18/infer",
     with_binary({"inputs": [binary_input(TOO_MANY, shape=(TOO_MANY_COUNT,))]}, TOO_MANY), {}, 413,
     f"{TOO_MANY_COUNT} images in one request"),
    ("gzip-body", "/v2/models/resnet18/infer", (gzip.compress(GOOD_JSON), None), {"Content-Encoding": "gzip"}, 415,
     "content-encoding 'gzip' is not supported"),
    ("over-max-body-bytes", "/v2/models/resnet18/infer", (b" " * (20 * 1024 * 1024 + 1), None), {}, 413,
     "max_body_bytes"),
    ("unknown-model", "/v2/models/vgg16/infer", (GOOD_JSON, None), {}, 404, "unknown model 'vgg16'"),
]


@pytest.mark.parametrize("path, body, headers, status, phrase", [c[1:] for c in BAD_REQUESTS],
                         ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_a_json_error_that_names_it(url, path, body, headers, status, phrase):
    data, header_length = body
    sent = dict(headers)
    if header_length is not None:
        sent[HEADER_LENGTH] = header_length
    response = requests.post(f"{url}{path}", data=data, headers=sent, timeout=60)
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert phrase in error.lower(), error
    assert requests.get(f"{url}/v2/health/live", timeout=10).json() == {"live": True}
