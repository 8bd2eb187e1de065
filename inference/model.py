"""ResNet-18: which weights, how they load, and one forward over a batch of preprocessed images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torchvision.models import ResNet18_Weights

log = logging.getLogger(__name__)

MODEL_NAME = "resnet18"
IMAGENET_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
# The category names ship inside torchvision, so labels work offline whatever the weights.
LABELS: tuple[str, ...] = tuple(IMAGENET_WEIGHTS.meta["categories"])
# The weights' own normalisation, applied on the model thread to whole uint8 batches.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """The requested weights cannot be loaded; the message says why and what else to choose."""


def weights_label(spec: str) -> str:
    """The name responses and /info use, so nobody mistakes random predictions for real ones."""
    if spec == "imagenet":
        return "ResNet18_Weights.IMAGENET1K_V1"
    if spec == "random":
        return "random"
    return f"file:{spec}"


def load_state_dict(spec: str) -> dict[str, torch.Tensor] | None:
    """The state dict named by MODEL_WEIGHTS; None for `random`."""
    if spec == "random":
        return None
    if spec == "imagenet":
        try:
            return IMAGENET_WEIGHTS.get_state_dict(progress=False, check_hash=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
            raise WeightsError(
                f"cannot load ImageNet weights ({IMAGENET_WEIGHTS.url}): not in the torch cache "
                f"({torch.hub.get_dir()}/checkpoints) and the download failed: {exc}. Choose MODEL_WEIGHTS=random "
                "(untrained, for tests and offline demos) or MODEL_WEIGHTS=/path/to/resnet18_state_dict.pth"
            ) from exc
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(f"MODEL_WEIGHTS={spec!r}: no such file. Choose `imagenet`, `random`, or the path of a "
                           "ResNet-18 state dict saved with torch.save(model.state_dict(), path)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise WeightsError(f"MODEL_WEIGHTS={spec!r} is not a readable torch state dict: {exc}") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # training checkpoints often wrap it
    if not isinstance(loaded, dict):
        raise WeightsError(f"MODEL_WEIGHTS={spec!r} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise WeightsError("DEVICE=cuda but no CUDA device is available; use DEVICE=cpu or auto")
    return torch.device(spec)


@dataclass
class Prediction:
    index: int
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "score": self.score}


class Classifier:
    """ResNet-18 in eval mode, batch-norm folded into the convolutions, channels_last on CPU."""

    def __init__(self, weights: str = "random", device: str = "cpu"):
        self.weights = weights_label(weights)
        self.device = resolve_device(device)
        model = torchvision.models.resnet18(weights=None)
        state = load_state_dict(weights)
        if state is not None:
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise WeightsError(f"MODEL_WEIGHTS={weights!r} does not fit ResNet-18: {exc}") from exc
        model.eval()
        # Folding BN into the convolutions is exact in eval mode and saves one pass over every activation.
        from torch.fx.experimental.optimization import fuse
        model = fuse(model)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self._mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1) * 255.0
        self._inv_std = 1.0 / (torch.tensor(STD, device=self.device).view(1, 3, 1, 1) * 255.0)

    def normalize(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW in channels_last memory (the permute is free: no copy)."""
        x = batch_nhwc.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        return (x - self._mean) * self._inv_std

    def probabilities(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(self.model(self.normalize(batch_nhwc)), dim=1).cpu()

    @staticmethod
    def top_k(probs: torch.Tensor, k: int) -> list[list[Prediction]]:
        scores, indices = torch.topk(probs, k=min(k, probs.shape[1]), dim=1)
        return [[Prediction(int(i), LABELS[int(i)], round(float(s), 6)) for s, i in zip(srow, irow)]
                for srow, irow in zip(scores.tolist(), indices.tolist())]

    def warm_up(self, batches: int, batch_size: int) -> None:
        """Run forwards at every batch size the batcher may use first, so real requests find kernels ready."""
        dummy = torch.zeros((batch_size, 224, 224, 3), dtype=torch.uint8)
        for _ in range(batches):
            self.probabilities(dummy)
            self.probabilities(dummy[:1])


def main(argv: list[str] | None = None) -> int:
    """`python -m inference.model --available-or-random`: the MODEL_WEIGHTS `make serve` should use.

    Prints `imagenet` when those weights load (from the cache, or downloaded into it now), else `random`,
    with the reason on stderr, so a machine without network access still gets a working service.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m inference.model")
    parser.add_argument("--available-or-random", action="store_true", required=True)
    parser.parse_args(argv)
    import contextlib

    try:
        # torch.hub announces downloads on stdout, which must carry nothing but the answer.
        with contextlib.redirect_stdout(sys.stderr):
            load_state_dict("imagenet")
    except WeightsError as exc:
        print(f"ImageNet weights unavailable, serving RANDOM weights (predictions are meaningless): {exc}",
              file=sys.stderr)
        print("random")
        return 0
    print("imagenet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
