"""What a /predict request carries: its images and options; the helpers the v2 infer body shares with it
(base64, topk, the image count); and the client-facing error (`ApiError`, a JSON `{"error": ...}` with a 4xx
status) every bad input becomes. The v2 body itself is parsed in inference/oip_codec.py.

Counts are checked before anything is decoded, so a body with 100 000 tiny images is refused cheaply.

Multipart bodies are parsed with the `multipart` package rather than werkzeug's form parser, which compiles
two regular expressions for every request's boundary: through werkzeug a form upload took 1.1 ms more CPU
than the same image sent raw (4.3 against 3.2 ms for the whole request path, about 4% of a request with its
forward, on the 2-core Zen 5 of docs/benchmarks.md); through `multipart` it takes 0.1 ms more.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

import multipart
from flask import Response, current_app, request

if not hasattr(multipart, "PushMultipartParser"):
    # python-multipart (FastAPI's parser) once installed itself under the same module name, with another API.
    raise ImportError(f"the `multipart` module at {multipart.__file__} is not the multipart package this service "
                      "needs (it may be python-multipart's old name): pip install 'multipart>=2.0.1,<3'")

# Parts a multipart body may have besides its images (text fields the service ignores), so a body of
# thousands of tiny parts is refused before its parts are cut out.
EXTRA_PARTS = 16


class ApiError(Exception):
    """A client-facing error: JSON `{"error": message}` with `status`, counted under `reason` if given."""

    def __init__(self, status: int, message: str, reason: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.reason, self.headers = status, message, reason, headers or {}

    def response(self) -> Response:
        return Response(error_body(self.message), self.status, self.headers, mimetype="application/json")


def error_body(message: str) -> str:
    """Every error's body, whichever layer answers it."""
    return json.dumps({"error": message}) + "\n"


def parse_topk(raw: object) -> int:
    if raw is None:
        return 5
    try:
        value = int(str(raw))
    except ValueError:
        raise ApiError(400, f"topk={str(raw)[:20]!r} is not an integer; use 1..1000", "bad_input") from None
    if not 1 <= value <= 1000:
        raise ApiError(400, f"topk={value} is out of range; use 1..1000", "bad_input")
    return value


def check_count(images: int) -> None:
    """Refuse more images than one worker's queue holds, before decoding any of them."""
    limit = current_app.extensions["inference"].config.queue_limit
    if images > limit:
        raise ApiError(413, f"{images} images in one request; at most {limit} (MAX_QUEUE) fit", "too_large")


def decode_base64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ApiError(400, f"{what} must be a base64 string, got {type(text).__name__}", "bad_input")
    if text.startswith("data:") and "," in text:  # tolerate data: URLs pasted from a browser
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"{what} is not valid base64 ({exc})", "bad_input") from None


def json_body() -> dict:
    if request.mimetype != "application/json":
        raise ApiError(415, f"unsupported Content-Type {request.mimetype or 'none'!r}: send application/json",
                       "bad_input")
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting, still the client's input
        raise ApiError(400, "the body is not valid JSON", "bad_input") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the JSON body must be an object, got {type(body).__name__}", "bad_input")
    return body


def multipart_files() -> list[bytes]:
    """The bytes of every `file` part of a multipart/form-data body, in order."""
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise ApiError(400, "the multipart/form-data Content-Type has no boundary; let the client build the body, "
                       "e.g. curl -F file=@cat.jpg", "bad_input")
    body = request.get_data(cache=False)  # over MAX_BODY_BYTES this answers 413 before any parsing
    if not body:
        raise ApiError(400, "the multipart body is empty; send e.g. curl -F file=@cat.jpg", "bad_input")
    limit = current_app.extensions["inference"].config.queue_limit
    try:
        # The whole body is in memory already: parts stay there too (no temporary files).
        parser = multipart.MultipartParser(io.BytesIO(body), boundary, content_length=len(body),
                                           part_limit=limit + EXTRA_PARTS, spool_limit=len(body) + 1,
                                           memory_limit=len(body) + 1)
        # A `file` part counts whether or not it names a file (curl -F 'file=<cat.jpg' sends none, some
        # clients only an RFC 5987 filename*): its bytes arrive as sent either way.
        files = [part.raw for part in parser if part.name == "file"]
    except multipart.ParserLimitReached as exc:
        raise ApiError(413, f"the multipart body is over a limit ({exc}): at most {limit + EXTRA_PARTS} parts, "
                       f"{limit} of them images (MAX_QUEUE), fit in one request", "too_large") from None
    except multipart.MultipartError as exc:
        raise ApiError(400, f"the multipart body is malformed ({exc}); let the client build it, e.g. "
                       "curl -F file=@cat.jpg", "bad_input") from None
    if not files:
        raise ApiError(400, "the multipart body has no `file` field; send e.g. curl -F file=@cat.jpg", "bad_input")
    return files


def predict_inputs() -> tuple[list[bytes], bool]:
    """The images of a /predict request and whether the client sent exactly one (flat answer)."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        files = multipart_files()
        return files, len(files) == 1
    if mimetype == "application/json":
        body = json_body()
        if "image" in body:
            return [decode_base64(body["image"], "`image`")], True
        if "images" in body:
            items = body["images"]
            if not isinstance(items, list) or not items:
                raise ApiError(400, "`images` must be a non-empty list of base64 strings", "bad_input")
            check_count(len(items))
            return [decode_base64(item, f"`images[{i}]`") for i, item in enumerate(items)], False
        raise ApiError(400, "the JSON body needs `image` (base64) or `images` (list of base64)", "bad_input")
    if mimetype.startswith("image/") or mimetype == "application/octet-stream":
        return [request.get_data(cache=False)], True
    shown = mimetype or "none"
    raise ApiError(415, f"unsupported Content-Type {shown!r}: send multipart/form-data with `file` fields, "
                   "a raw image/* or application/octet-stream body, or JSON {\"image\": \"<base64>\"}", "bad_input")
