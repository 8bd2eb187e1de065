"""Bytes -> a 224x224 RGB uint8 array, the same as the weights' own transform (resize 256, crop 224).

Normalisation (mean/std) is left to the model thread, which does it once per batch. Every way an
upload can be wrong ends in `ImageError` with the HTTP status and metric reason to answer with.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE = 256
CROP = 224

# Our own pixel limit is checked before decoding; PIL's must not fire first with a vaguer error.
Image.MAX_IMAGE_PIXELS = None


class ImageError(ValueError):
    """An upload that is not a usable image: `status` is 400 or 413, `reason` the rejection metric label."""

    def __init__(self, message: str, status: int = 400, reason: str = "bad_input"):
        super().__init__(message)
        self.status = status
        self.reason = reason


def open_image(data: bytes, max_pixels: int, what: str = "image") -> Image.Image:
    """Identify the format and check the size from the header alone: no pixel is decoded yet."""
    if not data:
        raise ImageError(f"{what} is empty: send the bytes of a JPEG, PNG, GIF, BMP, TIFF or WebP file")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image format this service can read "
                         f"(first bytes: {data[:8]!r}); send JPEG, PNG, GIF, BMP, TIFF or WebP") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt header raises many kinds
        raise ImageError(f"{what} has a corrupt header: {exc}") from None
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"{what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{what} is {width}x{height} = {width * height} pixels, over the limit of "
                         f"{max_pixels} (MAX_IMAGE_PIXELS); send a smaller image", status=413, reason="too_large")
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # PIL's own conversion clips high-bit-depth values to 255 (a white image); scale them instead.
        arr = np.asarray(img)
        if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
            arr = arr.astype(np.float32) / 257.0
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def decode(data: bytes, max_pixels: int, what: str = "image") -> Image.Image:
    """Decode to RGB with EXIF orientation applied; the first frame of an animation."""
    img = open_image(data, max_pixels, what)
    try:
        if img.format == "JPEG":
            # libjpeg can decode at 1/2, 1/4 or 1/8 scale for almost nothing; draft never goes below the
            # requested size, so the shorter side stays >= RESIZE and the bilinear resize still does the rest.
            img.draft("RGB", (RESIZE, RESIZE))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncated/odd EXIF warnings are not the client's problem
            img.load()
            img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data raises OSError, ValueError, SyntaxError...
        raise ImageError(f"{what} could not be decoded ({type(exc).__name__}: {exc}); it is truncated or corrupt")


def resize_crop(img: Image.Image) -> Image.Image:
    """torchvision's Resize(256, bilinear, antialias) then CenterCrop(224), with the same rounding.

    Only the crop's source region is resampled, at the scale the full resize would use: the pixels are the
    same, the work is smaller, and a 40000x1 strip cannot make a gigapixel intermediate image.
    """
    w, h = img.size
    if w <= h:
        new_w, new_h = RESIZE, int(RESIZE * h / w)
    else:
        new_w, new_h = int(RESIZE * w / h), RESIZE
    top = int(round((new_h - CROP) / 2.0))
    left = int(round((new_w - CROP) / 2.0))
    sx, sy = w / new_w, h / new_h
    box = (left * sx, top * sy, (left + CROP) * sx, (top + CROP) * sy)
    return img.resize((CROP, CROP), Image.BILINEAR, box=box)


def preprocess(data: bytes, max_pixels: int, what: str = "image") -> np.ndarray:
    """Encoded image bytes -> uint8 array of shape (224, 224, 3)."""
    return np.array(resize_crop(decode(data, max_pixels, what)), dtype=np.uint8, copy=True)
