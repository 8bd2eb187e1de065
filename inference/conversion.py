"""The graph the non-torch backends run: ResNet-18 with its input normalisation, exported to ONNX into the
model cache (inference/model_cache.py names, finds and writes the entries; this module needs torch).

The exported graph takes the uint8 NHWC batch preprocessing produces and returns logits, so OpenVINO
and ONNX Runtime fuse the normalisation into the first convolution instead of torch doing it first.
An image built with `python -m inference.model --convert` (the Dockerfile's build stage) carries the entry;
elsewhere the first worker exports it (about 0.3 s for ResNet-18) and the others find it.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import torch

from inference import model_cache
from inference.reference import build_reference_model, normalized

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def export_onnx(module: torch.nn.Module) -> bytes:
    example = torch.zeros((2, 224, 224, 3), dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript and is
        # several times slower for a plain CNN; this export is exact either way (tests compare with torch).
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=model_cache.OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return buffer.getvalue()


def onnx_file(weights: str, cache_dir: Path) -> tuple[Path, bool]:
    """The ONNX file for MODEL_WEIGHTS=`weights`: (path, whether it came from the cache), exported now on a
    miss. An entry that cannot be read is a miss whose export goes to a private temporary file."""
    path, problem = model_cache.lookup(weights, cache_dir)
    if path is not None:
        return path, True
    if problem:
        log.warning("%s; exporting to a private temporary file instead (fix: make the cache readable, "
                    "chmod -R a+rX %s, or rebuild the image)", problem, cache_dir)
    data = export_onnx(normalized(build_reference_model(weights)))
    return model_cache.store(data, weights, cache_dir, private=bool(problem)), False
