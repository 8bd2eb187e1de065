"""The photos a replay sends: every JPEG/PNG file of a directory, read once into memory; and synthetic
photo-like JPEGs of any size, made in memory (the tests and the pod memory measurement send them)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

_KINDS = {  # file signature -> content type
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}
_SUFFIXES = {".jpg", ".jpeg", ".png"}


class ImageDirError(ValueError):
    """An --images directory that cannot be used."""


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    content_type: str


def load_images(directory: str | Path) -> list[Photo]:
    """All JPEG/PNG files of `directory` in name order (so request i always gets the same photo)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ImageDirError(f"--images: {str(directory)!r} is not a directory")
    photos = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in _SUFFIXES or not path.is_file():
            continue
        data = path.read_bytes()
        content_type = next((ct for magic, ct in _KINDS.items() if data.startswith(magic)), None)
        if content_type is None:
            raise ImageDirError(f"--images: {str(path)!r} is named like an image but is not a JPEG or PNG file")
        photos.append(Photo(name=path.name, data=data, content_type=content_type))
    if not photos:
        raise ImageDirError(f"--images: {str(directory)!r} holds no .jpg, .jpeg or .png files")
    return photos


def synthetic_jpeg(size: tuple[int, int] = (320, 240), seed: int = 0, quality: int = 90) -> bytes:
    """A small synthetic photo-like JPEG (smooth gradients plus noise), made in memory."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / max(w - 1, 1), y * 255.0 / max(h - 1, 1),
                     (x + y) * 127.0 / max(w + h - 2, 1)], axis=-1)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(noisy, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()
