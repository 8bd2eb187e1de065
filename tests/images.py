"""Images made in memory for the tests: ordinary, unusual and hostile ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.support import synthetic_jpeg


def photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    from PIL import Image as _Image

    return _Image.open(io.BytesIO(synthetic_jpeg(size, seed))).convert("RGB")


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg(size=(320, 240), seed=0) -> bytes:
    return synthetic_jpeg(size, seed)


def png(size=(320, 240), mode="RGB") -> bytes:
    return encode(photo(size).convert(mode), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(photo().convert("CMYK"), "JPEG")


def grayscale_jpeg() -> bytes:
    return encode(photo().convert("L"), "JPEG")


def png16() -> bytes:
    arr = (np.asarray(photo().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(arr), "PNG")  # uint16 data opens as a 16-bit grayscale image


def palette_png_with_transparency() -> bytes:
    img = photo().convert("P", palette=Image.ADAPTIVE, colors=64)
    return encode(img, "PNG", transparency=0)


def animated_gif(frames: int = 3) -> bytes:
    imgs = [photo(seed=i).convert("P", palette=Image.ADAPTIVE) for i in range(frames)]
    return encode(imgs[0], "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)


def exif_rotated_jpeg(orientation: int = 6, size=(320, 200)) -> bytes:
    img = photo(size)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A 1x1 PNG whose header claims width x height: what a decompression bomb looks like to a decoder."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def corrupt_png() -> bytes:
    """A PNG with valid header but garbage where the compressed pixels should be."""
    data = bytearray(png())
    idat = data.index(b"IDAT") + 4
    data[idat:idat + 64] = bytes(64)
    return bytes(data)


def truncated_jpeg() -> bytes:
    data = jpeg((640, 480))
    return data[: len(data) // 2]
