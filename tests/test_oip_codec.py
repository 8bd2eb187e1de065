"""The v2 infer body codec (inference/oip_codec.py) without a server: JSON and binary tensor data requests,
every malformed body, and answers read back by tritonclient's own parser, so the byte layouts are the ones
the client really writes and reads.

MALFORMED is also sent over HTTP to a real gunicorn by tests/test_oip_tritonclient.py.
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest
from tritonclient.http import InferResult
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from inference.inputs import ApiError
from inference.oip_codec import (HEADER_LENGTH, RequestedOutput, encode_response, pack_bytes, parse_request,
                                 unpack_bytes)
from tests import images

JPEG = images.jpeg()
PNG = images.png()
B64 = base64.b64encode(JPEG).decode()
ALL_JSON = [RequestedOutput("label", False), RequestedOutput("score", False), RequestedOutput("index", False)]
ALL_BINARY = [RequestedOutput("label", True), RequestedOutput("score", True), RequestedOutput("index", True)]


def packed(*items: bytes) -> bytes:
    """A BYTES tensor the way tritonclient serializes it."""
    return serialize_byte_tensor(np.array(list(items), dtype=object)).item() if items else b""


def json_input(**fields) -> dict:
    """The image input in JSON; a field given as None is left out."""
    tensor = {"name": "image", "datatype": "BYTES", "shape": [1], "data": [B64], **fields}
    return {k: v for k, v in tensor.items() if v is not None}


def binary_input(blob: bytes, shape: object = (1,), **params) -> dict:
    tensor = {"name": "image", "datatype": "BYTES", "shape": list(shape) if isinstance(shape, tuple) else shape,
              "parameters": {"binary_data_size": len(blob), **params}}
    return {k: v for k, v in tensor.items() if v is not None}


def as_json(header: object) -> tuple[bytes, None]:
    return json.dumps(header).encode(), None


def with_binary(header: object, blob: bytes, length: str | None = None) -> tuple[bytes, str]:
    """A binary tensor data body: the JSON header, then `blob`; `length` overrides the true header length."""
    head = json.dumps(header).encode()
    return head + blob, str(len(head)) if length is None else length


ONE = packed(JPEG)
GOOD_JSON = json.dumps({"inputs": [json_input()]}).encode()

# (id, (body, Inference-Header-Content-Length), a phrase the 400's message must contain)
MALFORMED = [
    ("not-json", (JPEG, None), "is not valid json"),
    ("empty-body", (b"", None), "is not valid json"),
    ("invalid-utf8", (b"\xff\xfe\xfa{}", None), "is not valid json"),
    ("json-nested-100000-deep", (b"[" * 100_000, None), "is not valid json"),
    ("binary-without-header-length", (GOOD_JSON + ONE, None), f"needs the {HEADER_LENGTH.lower()}"),
    ("header-not-an-object", as_json([json_input()]), "must be an object, got list"),
    ("binary-header-not-an-object", with_binary([1, 2], ONE), "must be an object, got list"),
    ("header-length-not-an-integer", (GOOD_JSON, "abc"), "'abc' is not an integer"),
    ("header-length-a-float", (GOOD_JSON, "12.5"), "'12.5' is not an integer"),
    ("header-length-with-underscore", (GOOD_JSON, "1_0"), "'1_0' is not an integer"),
    ("header-length-negative", (GOOD_JSON, "-3"), "-3 is negative"),
    ("header-length-past-the-body", (GOOD_JSON, str(len(GOOD_JSON) + 1)), "is larger than the"),
    ("header-length-cuts-the-json", (GOOD_JSON, str(len(GOOD_JSON) - 1)), "is not valid json"),
    ("no-inputs", as_json({"id": "x"}), "no `inputs`"),
    ("empty-inputs", as_json({"inputs": []}), "no `inputs`"),
    ("inputs-not-a-list", as_json({"inputs": json_input()}), "`inputs` must be a list"),
    ("two-inputs", as_json({"inputs": [json_input(), json_input()]}), "2 inputs; this model takes exactly one"),
    ("input-not-an-object", as_json({"inputs": [B64]}), "`inputs[0]` must be an object"),
    ("wrong-input-name", as_json({"inputs": [json_input(name="picture")]}), "unknown input 'picture'"),
    ("no-input-name", as_json({"inputs": [json_input(name=None)]}), "unknown input none"),
    ("wrong-datatype", as_json({"inputs": [json_input(datatype="FP32")]}), "datatype must be bytes"),
    ("json-shape-mismatch", as_json({"inputs": [json_input(shape=[3])]}), "does not match its 1 data elements"),
    ("shape-not-a-list", as_json({"inputs": [json_input(shape="1")]}), "is not [n] or [n, 1]"),
    ("shape-3-dims", as_json({"inputs": [json_input(shape=[1, 1, 1])]}), "is not [n] or [n, 1]"),
    ("shape-negative", as_json({"inputs": [json_input(shape=[-1])]}), "is not [n] or [n, 1]"),
    ("shape-n-by-2", as_json({"inputs": [json_input(shape=[1, 2])]}), "is not [n] or [n, 1]"),
    ("empty-data", as_json({"inputs": [json_input(data=[], shape=[0])]}), "non-empty list"),
    ("no-data-no-binary", as_json({"inputs": [json_input(data=None)]}), "non-empty list"),
    ("data-not-base64", as_json({"inputs": [json_input(data=["***"])]}), "not valid base64"),
    ("data-not-a-string", as_json({"inputs": [json_input(data=[42])]}), "must be a base64 string"),
    ("binary-truncated", with_binary({"inputs": [binary_input(ONE)]}, ONE[:10]),
     f"binary_data_size {len(ONE)} is larger than the 10 bytes"),
    ("binary-extra-trailing-bytes", with_binary({"inputs": [binary_input(ONE)]}, ONE + b"xy"),
     "2 extra bytes after the input's"),
    ("trailing-bytes-without-binary-input", with_binary({"inputs": [json_input()]}, b"junk"),
     "4 bytes follow the json header"),
    ("length-prefix-past-the-end",
     with_binary({"inputs": [binary_input(struct.pack("<I", 1000) + b"abc")]}, struct.pack("<I", 1000) + b"abc"),
     "length prefix says 1000 bytes but only 3 are left"),
    ("length-prefix-cut", with_binary({"inputs": [binary_input(ONE + b"\x01\x00", shape=(2,))]}, ONE + b"\x01\x00"),
     "element 2 of 2 (the shape) has no 4-byte length prefix"),
    ("fewer-elements-than-shape", with_binary({"inputs": [binary_input(ONE, shape=(2,))]}, ONE),
     "element 2 of 2 (the shape) has no 4-byte length prefix"),
    ("more-elements-than-shape", with_binary({"inputs": [binary_input(ONE * 2)]}, ONE * 2),
     f"{len(ONE)} bytes left after the 1 elements"),
    ("binary-without-shape", with_binary({"inputs": [binary_input(ONE, shape=None)]}, ONE), "needs its `shape`"),
    ("binary-shape-zero", with_binary({"inputs": [binary_input(b"", shape=(0,))]}, b""), "holds no images"),
    ("binary-and-data", with_binary({"inputs": [{**binary_input(ONE), "data": [B64]}]}, ONE),
     "both `data` and parameters.binary_data_size"),
    ("binary-size-a-string", with_binary({"inputs": [binary_input(ONE, binary_data_size="9")]}, ONE),
     "binary_data_size '9' is not a non-negative integer"),
    ("binary-size-negative", with_binary({"inputs": [binary_input(ONE, binary_data_size=-1)]}, ONE),
     "binary_data_size -1 is not a non-negative integer"),
    ("parameters-not-an-object", as_json({"inputs": [json_input()], "parameters": [1]}),
     "`parameters` must be an object"),
    ("input-parameters-not-an-object", as_json({"inputs": [json_input(parameters=7)]}),
     "input `parameters` must be an object"),
    ("binary-data-output-not-a-bool", as_json({"inputs": [json_input()], "parameters": {"binary_data_output": 1}}),
     "`binary_data_output` must be true or false"),
    ("topk-out-of-range", as_json({"inputs": [json_input()], "parameters": {"topk": 0}}), "out of range"),
    ("outputs-not-a-list", as_json({"inputs": [json_input()], "outputs": "label"}), "`outputs` must be a list"),
    ("output-not-an-object", as_json({"inputs": [json_input()], "outputs": ["label"]}),
     "`outputs[0]` must be an object"),
    ("unknown-output", as_json({"inputs": [json_input()], "outputs": [{"name": "logits"}]}),
     "unknown output 'logits'; this model's outputs are label, score, index"),
    ("output-name-not-a-string", as_json({"inputs": [json_input()], "outputs": [{"name": ["label"]}]}),
     "unknown output ['label']"),
    ("output-twice", as_json({"inputs": [json_input()], "outputs": [{"name": "score"}, {"name": "score"}]}),
     "output 'score' is asked for twice"),
    ("output-binary-data-not-a-bool",
     as_json({"inputs": [json_input()], "outputs": [{"name": "score", "parameters": {"binary_data": "yes"}}]}),
     "`binary_data` must be true or false"),
    ("classification-on-label",
     as_json({"inputs": [json_input()], "outputs": [{"name": "label", "parameters": {"classification": 3}}]}),
     "classification is only available on the `score` output"),
    ("classification-zero",
     as_json({"inputs": [json_input()], "outputs": [{"name": "score", "parameters": {"classification": 0}}]}),
     "must be an integer in 1..1000"),
    ("classification-and-topk-disagree",
     as_json({"inputs": [json_input()], "parameters": {"topk": 5},
              "outputs": [{"name": "score", "parameters": {"classification": 3}}]}), "disagree"),
    ("shared-memory-input",
     as_json({"inputs": [json_input(data=None, parameters={"shared_memory_region": "r", "shared_memory_byte_size": 8})]}),
     "shared memory"),
    ("shared-memory-output",
     as_json({"inputs": [json_input()], "outputs": [{"name": "index", "parameters": {"shared_memory_region": "r"}}]}),
     "shared memory"),
]


@pytest.mark.parametrize("body, phrase", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_a_malformed_body_is_a_400_that_names_the_problem(body, phrase):
    with pytest.raises(ApiError) as raised:
        parse_request(*body).images()
    assert raised.value.status == 400 and raised.value.reason == "bad_input"
    assert phrase in raised.value.message.lower(), raised.value.message
    assert len(raised.value.message) < 300, "a message must not echo the client's body back"


# (id, (body, Inference-Header-Content-Length), query topk, expected count, topk, outputs, images, echo)
PARSED = [
    ("json-one", as_json({"inputs": [json_input()]}), None, 1, 5, ALL_JSON, [JPEG], {}),
    ("json-two-shape-n-by-1", as_json({"inputs": [json_input(shape=[2, 1], data=[B64, B64])]}), None, 2, 5,
     ALL_JSON, [JPEG, JPEG], {}),
    ("json-without-shape", as_json({"inputs": [json_input(shape=None)]}), None, 1, 5, ALL_JSON, [JPEG], {}),
    ("json-with-id", as_json({"id": "req-7", "inputs": [json_input()]}), None, 1, 5, ALL_JSON, [JPEG],
     {"id": "req-7"}),
    ("json-header-in-its-length", (GOOD_JSON, str(len(GOOD_JSON))), None, 1, 5, ALL_JSON, [JPEG], {}),
    ("binary-two-images", with_binary({"inputs": [binary_input(packed(JPEG, PNG), shape=(2,))]}, packed(JPEG, PNG)),
     None, 2, 5, ALL_JSON, [JPEG, PNG], {}),
    ("binary-empty-element", with_binary({"inputs": [binary_input(packed(b""))]}, packed(b"")), None, 1, 5,
     ALL_JSON, [b""], {}),
    ("binary-data-output", as_json({"inputs": [json_input()], "parameters": {"binary_data_output": True}}), None,
     1, 5, ALL_BINARY, [JPEG], {}),
    ("empty-outputs-means-all", as_json({"inputs": [json_input()], "outputs": []}), None, 1, 5, ALL_JSON, [JPEG],
     {}),
    ("output-subset-in-client-order",
     as_json({"inputs": [json_input()], "parameters": {"binary_data_output": True},
              "outputs": [{"name": "index", "parameters": {"binary_data": False}}, {"name": "label"}]}), None, 1, 5,
     [RequestedOutput("index", False), RequestedOutput("label", True)], [JPEG], {}),
    ("topk-from-parameters", as_json({"inputs": [json_input()], "parameters": {"topk": 3}}), "7", 1, 3, ALL_JSON,
     [JPEG], {}),
    ("topk-from-the-query", as_json({"inputs": [json_input()]}), "7", 1, 7, ALL_JSON, [JPEG], {}),
    ("classification-sets-topk",
     as_json({"inputs": [json_input()], "outputs": [{"name": "score", "parameters": {"classification": 2,
                                                                                     "binary_data": True}}]}),
     None, 1, 2, [RequestedOutput("score", True, classification=True)], [JPEG], {}),
    ("classification-agrees-with-topk",
     as_json({"inputs": [json_input()], "parameters": {"topk": 2},
              "outputs": [{"name": "score", "parameters": {"classification": 2}}]}),
     None, 1, 2, [RequestedOutput("score", False, classification=True)], [JPEG], {}),
    ("triton-reserved-parameters-ignored",
     as_json({"inputs": [json_input()], "parameters": {"priority": 1, "timeout": 5, "sequence_id": 0}}), None,
     1, 5, ALL_JSON, [JPEG], {}),
]


@pytest.mark.parametrize("body, query_topk, count, topk, outputs, decoded, echo", [case[1:] for case in PARSED],
                         ids=[case[0] for case in PARSED])
def test_a_valid_body_parses(body, query_topk, count, topk, outputs, decoded, echo):
    parsed = parse_request(*body, query_topk=query_topk)
    assert (parsed.count, parsed.topk, parsed.outputs, parsed.echo) == (count, topk, outputs, echo)
    assert parsed.images() == decoded


def test_the_count_is_known_before_any_image_is_decoded():
    body = as_json({"inputs": [json_input(shape=[3], data=["***"] * 3)]})
    parsed = parse_request(*body)  # invalid base64 everywhere, yet the count is there to be checked first
    assert parsed.count == 3
    with pytest.raises(ApiError):
        parsed.images()


@pytest.mark.parametrize("items", [[b""], [b"a"], [JPEG, PNG], ["é".encode(), b"\x00" * 5, b""], [b"x"] * 50],
                         ids=["empty", "one-byte", "two-images", "non-ascii-and-nul", "fifty"])
def test_bytes_layout_matches_tritonclient(items):
    assert pack_bytes(items) == packed(*items)
    assert unpack_bytes(packed(*items), len(items)) == items
    assert list(deserialize_bytes_tensor(pack_bytes(items))) == items


PREDICTIONS = [[{"index": 281, "label": "tabby", "score": 0.5}, {"index": 7, "label": "cock", "score": 0.25}],
               [{"index": 1, "label": "goldfish", "score": 0.75}, {"index": 999, "label": "toilet tissue",
                                                                   "score": 0.125}]]
EXPECTED = {"label": np.array([[b"tabby", b"cock"], [b"goldfish", b"toilet tissue"]], dtype=object),
            "score": np.array([[0.5, 0.25], [0.75, 0.125]], dtype=np.float32),
            "index": np.array([[281, 7], [1, 999]], dtype=np.int64)}
CLASSES = np.array([[b"0.500000:281:tabby", b"0.250000:7:cock"],
                    [b"0.750000:1:goldfish", b"0.125000:999:toilet tissue"]], dtype=object)

# (id, requested outputs)
ENCODED = [
    ("all-json", ALL_JSON),
    ("all-binary", ALL_BINARY),
    ("mixed", [RequestedOutput("label", True), RequestedOutput("score", False), RequestedOutput("index", True)]),
    ("only-index-binary", [RequestedOutput("index", True)]),
    ("only-score-json", [RequestedOutput("score", False)]),
    ("classification-binary", [RequestedOutput("score", True, classification=True)]),
    ("classification-json", [RequestedOutput("score", False, classification=True), RequestedOutput("index", True)]),
]


@pytest.mark.parametrize("outputs", [case[1] for case in ENCODED], ids=[case[0] for case in ENCODED])
def test_tritonclient_reads_the_answer(outputs):
    body, headers = encode_response({"id": "r", "model_name": "resnet18"}, PREDICTIONS, outputs)
    binary = any(o.binary for o in outputs)
    assert headers["Content-Type"] == ("application/octet-stream" if binary else "application/json")
    assert (HEADER_LENGTH in headers) == binary
    if not binary:
        json.loads(body)  # the whole body is the JSON
    result = InferResult.from_response_body(body, header_length=headers.get(HEADER_LENGTH) and
                                            int(headers[HEADER_LENGTH]))
    answer = result.get_response()
    assert answer["id"] == "r" and [o["name"] for o in answer["outputs"]] == [o.name for o in outputs]
    for output in outputs:
        got = result.as_numpy(output.name)
        if got.dtype == object:  # tritonclient gives BYTES as str from JSON, as bytes from binary data
            got = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])(got)
        want = CLASSES if output.classification else EXPECTED[output.name]
        assert got.shape == (2, 2) and got.dtype == want.dtype, output
        assert (got == want).all(), (output, got)
