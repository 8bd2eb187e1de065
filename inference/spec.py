"""What the served model is, without importing torch: its name, its input normalisation, its 1000 labels,
and how a MODEL_WEIGHTS choice is named in answers. The runtime image has no torch, so everything a worker
needs to answer lives here or in modules as light.
"""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "resnet18"
# The ImageNet weights' own normalisation, applied inside every backend's graph to whole uint8 batches.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# torchvision's ImageNet category names, one a line (tests check them against torchvision's own list).
LABELS: tuple[str, ...] = tuple(
    (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines())


class WeightsError(RuntimeError):
    """The requested weights cannot be loaded; the message says why and what else to choose."""


def weights_label(spec: str) -> str:
    """The name responses and /info use, so nobody mistakes random predictions for real ones."""
    if spec == "imagenet":
        return "ResNet18_Weights.IMAGENET1K_V1"
    if spec == "random":
        return "random"
    return f"file:{spec}"


def weights_file(spec: str) -> Path:
    """The state dict file MODEL_WEIGHTS names, or WeightsError saying what else to choose."""
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(f"MODEL_WEIGHTS={spec!r}: no such file. Choose `imagenet`, `random`, or the path of a "
                           "ResNet-18 state dict saved with torch.save(model.state_dict(), path)")
    return path
