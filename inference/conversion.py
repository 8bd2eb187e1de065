"""The graph the non-torch backends run: ResNet-18 with its input normalisation, exported to ONNX and cached.

The exported graph takes the uint8 NHWC batch preprocessing produces and returns logits, so OpenVINO
and ONNX Runtime fuse the normalisation into the first convolution instead of torch doing it first.

The cache is keyed by a hash of the weights and of everything that shapes the export (torch's version,
the opset, this module's graph version): a worker of a pod whose image was built with `python -m
inference.model --convert` (the Dockerfile does) loads it in milliseconds; elsewhere the first worker exports
it (about 0.3 s for ResNet-18) and the others find it. Writes are atomic, so workers starting together
never read half a file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)

OPSET = 17
# Bump when the exported graph changes shape or meaning, so old cache entries are not reused.
GRAPH_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class Normalized(torch.nn.Module):
    """uint8 NHWC -> the model's normalised float NCHW input -> logits."""

    def __init__(self, model: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.register_buffer("mean_255", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std_255", 1.0 / (torch.tensor(std).view(1, 3, 1, 1) * 255.0))

    def normalize(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        # The permute is free in channels_last memory: no copy before the first convolution.
        return (batch_nhwc.permute(0, 3, 1, 2).float() - self.mean_255) * self.inv_std_255

    def forward(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(batch_nhwc))


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer, in name order: equal weights give equal keys."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_key(module: torch.nn.Module) -> str:
    return f"resnet18-{weights_hash(module)[:24]}-torch{torch.__version__.split('+')[0]}-opset{OPSET}-g{GRAPH_VERSION}"


def export_onnx(module: torch.nn.Module) -> bytes:
    example = torch.zeros((2, 224, 224, 3), dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript and is
        # several times slower for a plain CNN; this export is exact either way (tests compare with torch).
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return buffer.getvalue()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "resnet18-inference"


def onnx_file(module: Normalized, cache_dir: Path) -> tuple[Path, bool]:
    """The ONNX file for `module`, exported now unless cached: (path, whether it came from the cache).

    An unwritable cache directory is not an error: the export goes to a private temporary file instead
    (logged), at the cost of exporting again in every worker.
    """
    path = cache_dir / f"{cache_key(module)}.onnx"
    if path.is_file():
        return path, True
    data = export_onnx(module)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=path.name, suffix=".tmp")
    except OSError as exc:
        log.warning("model cache %s is not writable (%s); exporting to a temporary file", cache_dir, exc)
        fd, tmp = tempfile.mkstemp(prefix="resnet18-", suffix=".onnx")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return Path(tmp), False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)  # atomic: a worker starting at the same moment sees nothing or the whole file
    return path, False
