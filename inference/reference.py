"""The reference model in torch: which weights MODEL_WEIGHTS names, how they load, and ResNet-18 with its
input normalisation. Only the torch backend and the conversion (inference/conversion.py) import this: the
runtime image has no torch.
"""

from __future__ import annotations

import torch
import torchvision
from torchvision.models import ResNet18_Weights

from inference.spec import MEAN, STD, WeightsError, weights_file

IMAGENET_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1


class Normalized(torch.nn.Module):
    """uint8 NHWC -> the model's normalised float NCHW input -> logits."""

    def __init__(self, model: torch.nn.Module, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD):
        super().__init__()
        self.model = model
        self.register_buffer("mean_255", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std_255", 1.0 / (torch.tensor(std).view(1, 3, 1, 1) * 255.0))

    def normalize(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        # The permute is free in channels_last memory: no copy before the first convolution.
        return (batch_nhwc.permute(0, 3, 1, 2).float() - self.mean_255) * self.inv_std_255

    def forward(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(batch_nhwc))


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
    path = weights_file(spec)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise WeightsError(f"MODEL_WEIGHTS={spec!r} is not a readable torch state dict: {exc}") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # training checkpoints often wrap it
    if not isinstance(loaded, dict):
        raise WeightsError(f"MODEL_WEIGHTS={spec!r} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def build_reference_model(weights: str) -> torch.nn.Module:
    """torchvision's ResNet-18 in eval mode with the weights MODEL_WEIGHTS names.

    `random` weights come from a fixed seed, so every worker and replica (and a converted copy) holds the
    same untrained model and answers the same image the same way.
    """
    state = load_state_dict(weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None)
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"MODEL_WEIGHTS={weights!r} does not fit ResNet-18: {exc}") from exc
    return model.eval()


def normalized(model: torch.nn.Module) -> Normalized:
    return Normalized(model).eval()


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise WeightsError("DEVICE=cuda but no CUDA device is available; use DEVICE=cpu or auto")
    return torch.device(spec)


def torch_runner_module(weights: str, device: torch.device) -> torch.nn.Module:
    """The torch backend's module: batch-norm folded into the convolutions (exact in eval mode, one pass
    over every activation less), channels_last."""
    from torch.fx.experimental.optimization import fuse

    return normalized(fuse(build_reference_model(weights))).to(device, memory_format=torch.channels_last)


def available_or_random() -> int:
    """Print `imagenet` when those weights load (from the cache, or downloaded into it now), else `random`,
    with the reason on stderr, so a machine without network access still gets a working service."""
    import contextlib
    import sys

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
