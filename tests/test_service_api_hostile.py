"""The HTTP API through Flask's test client against a table of hostile or unusual inputs: each gets its status
and its rejection metric, and the worker stays healthy afterwards.

Every app here has random weights and its own metrics registry.
"""

from __future__ import annotations

import base64

import pytest

from tests import images
from tests.test_service_api import B64, as_json, metric_value, multipart, raw


def multipart_body(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary", end: bool = True,
                   content_type: str | None = None) -> dict:
    """A multipart/form-data body built by hand: (field name, filename or None for a text field, bytes)."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode() if end else b""
    return {"data": body, "content_type": content_type or f"multipart/form-data; boundary={boundary}"}


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
