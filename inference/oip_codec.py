"""Open Inference Protocol v2 infer bodies in both encodings tritonclient speaks: plain JSON, and Triton's
binary tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes, then raw tensors).

Pure functions of bytes and header values, so every malformed body is unit-tested without a server. Every
problem is an ApiError 400 that names it. Parsing stops once the image count is known: the route checks
it against MAX_QUEUE before `InferRequest.images()` decodes a single image.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Callable, Iterable

from inference.inputs import ApiError, decode_base64, parse_topk

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT_NAME = "image"
OUTPUT_DATATYPES = {"label": "BYTES", "score": "FP32", "index": "INT64"}
# Triton's classification extension answers on a score tensor; ours is already the top-k, so only `score`.
CLASSIFIED_OUTPUT = "score"
PACK_FORMATS = {"FP32": "f", "INT64": "q"}
INPUT_HINT = ('{"name": "image", "datatype": "BYTES", "shape": [N], "data": ["<base64>", ...]}, or the raw '
              'images as binary tensor data')


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool
    classification: bool = False


@dataclass
class InferRequest:
    count: int
    topk: int
    outputs: list[RequestedOutput]
    decode: Callable[[], list[bytes]]  # deferred, so that the count can be refused before any work
    echo: dict = field(default_factory=dict)  # {"id": ...} when the client sent one: answers carry it back

    def images(self) -> list[bytes]:
        return self.decode()


def bad(message: str) -> ApiError:
    return ApiError(400, message, "bad_input")


def shown(value: object, limit: int = 40) -> str:
    """A client's value inside an error message, cut short: a message must not echo a megabyte back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_request(body: bytes, header_length: str | None = None, query_topk: str | None = None) -> InferRequest:
    """An infer body and its Inference-Header-Content-Length (None when absent) -> what to compute."""
    header, binary = split_body(body, header_length)
    params = as_object(header.get("parameters"), "`parameters`")
    outputs, classes = requested_outputs(header.get("outputs"), flag(params, "binary_data_output", False))
    topk_raw = params.get("topk", query_topk)
    if classes is not None and topk_raw is not None and parse_topk(topk_raw) != classes:
        raise bad(f"classification={classes} on output `score` and topk={shown(topk_raw)} disagree; send one")
    topk = classes if classes is not None else parse_topk(topk_raw)
    count, decode = input_images(the_input(header.get("inputs")), binary, header_length is not None)
    echo = {"id": header["id"]} if "id" in header else {}
    return InferRequest(count=count, topk=topk, outputs=outputs, decode=decode, echo=echo)


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """(the JSON header, the bytes after it)."""
    if header_length is None:
        head, rest = body, b""
        where = "the body"
    else:
        size = parse_header_length(header_length, len(body))
        head, rest = body[:size], body[size:]
        where = f"the first {size} bytes of the body ({HEADER_LENGTH})"
    try:
        header = json.loads(head)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting, still the client's input
        hint = "" if header_length is not None else f"; binary tensor data needs the {HEADER_LENGTH} header"
        raise bad(f"{where} is not valid JSON{hint}") from None
    if not isinstance(header, dict):
        raise bad(f"the JSON header must be an object, got {type(header).__name__}")
    return header, rest


def parse_header_length(raw: str, body_size: int) -> int:
    text = raw.strip()
    # Stricter than int(): no '+', '_' or spaces inside, no absurd lengths.
    if not re.fullmatch(r"-?[0-9]{1,19}", text):
        raise bad(f"{HEADER_LENGTH} {shown(raw)} is not an integer")
    size = int(text)
    if size < 0:
        raise bad(f"{HEADER_LENGTH} {size} is negative")
    if size > body_size:
        raise bad(f"{HEADER_LENGTH} {size} is larger than the {body_size}-byte body")
    return size


def as_object(value: object, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"{what} must be an object, got {type(value).__name__}")
    return value


def flag(params: dict, key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise bad(f"parameter `{key}` must be true or false, got {shown(value)}")
    return value


def refuse_shared_memory(params: dict, what: str) -> None:
    if any(key.startswith("shared_memory") for key in params):
        raise bad(f"{what} uses shared memory, which this server does not support; send the data in the body")


def requested_outputs(raw: object, binary_default: bool) -> tuple[list[RequestedOutput], int | None]:
    """The outputs to answer with, in the client's order, and the classification count if one asked for it."""
    if raw is None or raw == []:  # Triton's rule: no list means every output
        return [RequestedOutput(name, binary_default) for name in OUTPUT_DATATYPES], None
    if not isinstance(raw, list):
        raise bad(f"`outputs` must be a list of {{\"name\": ...}} objects, got {type(raw).__name__}")
    outputs, classes = [], None
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise bad(f"`outputs[{i}]` must be an object with a `name`")
        name = item.get("name")
        if not isinstance(name, str) or name not in OUTPUT_DATATYPES:
            raise bad(f"unknown output {shown(name)}; this model's outputs are {', '.join(OUTPUT_DATATYPES)}")
        if any(o.name == name for o in outputs):
            raise bad(f"output {name!r} is asked for twice")
        params = as_object(item.get("parameters"), f"`outputs[{i}].parameters`")
        refuse_shared_memory(params, f"output {name!r}")
        count = params.get("classification")
        if count is not None:
            if name != CLASSIFIED_OUTPUT:
                raise bad(f"classification is only available on the `{CLASSIFIED_OUTPUT}` output, not {name!r}")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
                raise bad(f"classification={shown(count)} on output `score` must be an integer in 1..1000")
            classes = count
        outputs.append(RequestedOutput(name, flag(params, "binary_data", binary_default), count is not None))
    return outputs, classes


def the_input(inputs: object) -> dict:
    if inputs is None or inputs == []:
        raise bad(f"the request has no `inputs`; send exactly one tensor: {INPUT_HINT}")
    if not isinstance(inputs, list):
        raise bad(f"`inputs` must be a list holding one tensor, got {type(inputs).__name__}")
    if len(inputs) > 1:
        raise bad(f"{len(inputs)} inputs; this model takes exactly one, {INPUT_NAME!r}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise bad(f"`inputs[0]` must be an object: {INPUT_HINT}")
    if tensor.get("name") != INPUT_NAME:
        raise bad(f"unknown input {shown(tensor.get('name'))}; this model's only input is {INPUT_NAME!r}")
    if tensor.get("datatype") != "BYTES":
        raise bad(f"input datatype must be BYTES (one encoded image per element), got "
                  f"{shown(tensor.get('datatype'))}")
    return tensor


def declared_count(shape: object) -> int | None:
    """N from a shape of [N] or [N, 1]; None when the client sent no shape."""
    if shape is None:
        return None
    if (not isinstance(shape, list) or len(shape) not in (1, 2) or shape[1:] not in ([], [1])
            or isinstance(shape[0], bool) or not isinstance(shape[0], int) or shape[0] < 0):
        raise bad(f"input shape {shown(shape)} is not [N] or [N, 1] for N images")
    return shape[0]


def input_images(tensor: dict, binary: bytes, has_header_length: bool) -> tuple[int, Callable[[], list[bytes]]]:
    """(how many images, a function that extracts them): the count is known before anything is decoded."""
    params = as_object(tensor.get("parameters"), "input `parameters`")
    refuse_shared_memory(params, "input 'image'")
    declared = declared_count(tensor.get("shape"))
    size = params.get("binary_data_size")
    if size is None:
        if binary:
            raise bad(f"{len(binary)} bytes follow the JSON header but the input has no "
                      "parameters.binary_data_size")
        data = tensor.get("data")
        if not isinstance(data, list) or not data:
            raise bad("input `data` must be a non-empty list of base64-encoded images")
        if declared is not None and declared != len(data):
            raise bad(f"input shape {tensor['shape']} does not match its {len(data)} data elements")
        return len(data), lambda: [decode_base64(item, f"input data[{i}]") for i, item in enumerate(data)]
    if "data" in tensor:
        raise bad("the input has both `data` and parameters.binary_data_size; send one of them")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad(f"binary_data_size {shown(size)} is not a non-negative integer")
    if declared is None:
        raise bad("a binary input needs its `shape` ([N] for N images)")
    if declared == 0:
        raise bad("input shape [0] holds no images")
    if size > len(binary):
        hint = "" if has_header_length else f" (the {HEADER_LENGTH} header is missing)"
        raise bad(f"binary_data_size {size} is larger than the {len(binary)} bytes after the JSON header: "
                  f"the body is truncated{hint}")
    if size < len(binary):
        raise bad(f"{len(binary) - size} extra bytes after the input's {size} bytes of binary data")
    return declared, lambda: unpack_bytes(binary, declared)


def unpack_bytes(raw: bytes, count: int) -> list[bytes]:
    """A BYTES tensor of `count` elements, each a 4-byte little-endian length and then that many bytes."""
    items, offset = [], 0
    for i in range(1, count + 1):
        if len(raw) - offset < 4:
            raise bad(f"binary input: element {i} of {count} (the shape) has no 4-byte length prefix; "
                      f"the data ends after {i - 1}")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if length > len(raw) - offset:
            raise bad(f"binary input: element {i}'s length prefix says {length} bytes but only "
                      f"{len(raw) - offset} are left")
        items.append(raw[offset:offset + length])
        offset += length
    if offset != len(raw):
        raise bad(f"binary input: {len(raw) - offset} bytes left after the {count} elements of its shape")
    return items


def pack_bytes(items: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def output_values(output: RequestedOutput, flat: list[dict]) -> tuple[str, list]:
    """(datatype, row-major values) of one requested output over the flattened top-k predictions."""
    if output.classification:
        # Triton's classification strings, "<score>:<index>:<label>", its score printed like C's %f.
        return "BYTES", [f"{p['score']:f}:{p['index']}:{p['label']}" for p in flat]
    return OUTPUT_DATATYPES[output.name], [p[output.name] for p in flat]


def tensor_bytes(datatype: str, values: list) -> bytes:
    if datatype == "BYTES":
        return pack_bytes(v.encode() for v in values)
    return struct.pack(f"<{len(values)}{PACK_FORMATS[datatype]}", *values)


def encode_response(answer: dict, predictions: list[list[dict]],
                    outputs: list[RequestedOutput]) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of an infer answer: `answer` plus the requested outputs of shape [N, topk], each in
    JSON or, if asked, as binary tensor data after the JSON header."""
    n, k = len(predictions), len(predictions[0])
    flat = [p for row in predictions for p in row]
    tensors, blobs = [], []
    for output in outputs:
        datatype, values = output_values(output, flat)
        tensor = {"name": output.name, "datatype": datatype, "shape": [n, k]}
        if output.binary:
            blobs.append(tensor_bytes(datatype, values))
            tensor["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            tensor["data"] = values
        tensors.append(tensor)
    header = json.dumps({**answer, "outputs": tensors}, separators=(",", ":")).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                      HEADER_LENGTH: str(len(header))}
