"""ResNet-18: which weights, how they load, and one forward over a batch of preprocessed images on a backend."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torchvision.models import ResNet18_Weights

from inference import backends
from inference.conversion import Normalized, default_cache_dir, onnx_file

log = logging.getLogger(__name__)

MODEL_NAME = "resnet18"
IMAGENET_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
# The category names ship inside torchvision, so labels work offline whatever the weights.
LABELS: tuple[str, ...] = tuple(IMAGENET_WEIGHTS.meta["categories"])
# The weights' own normalisation, applied inside every backend's graph to whole uint8 batches.
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
    return Normalized(model, MEAN, STD).eval()


class Classifier:
    """ResNet-18 on the chosen backend: uint8 NHWC batches in, probabilities and top-k out.

    torch is the reference (batch-norm folded into the convolutions, channels_last); OpenVINO and ONNX
    Runtime run the same weights exported to ONNX (inference/conversion.py), with the threads given.
    """

    def __init__(self, weights: str = "random", device: str = "cpu", backend: str = "auto",
                 precision: str = "fp32", threads: int | None = None, cache_dir: str | Path | None = None,
                 cpu_flags: frozenset[str] | None = None):
        self.weights = weights_label(weights)
        self.device = resolve_device(device)
        chosen = backends.choose(backend, precision, self.device.type,
                                 backends.cpu_flags() if cpu_flags is None else cpu_flags)
        threads = threads or torch.get_num_threads()
        model = build_reference_model(weights)
        # normalize() alone, without the weights: the preprocessing every backend's graph starts with.
        self._normalizer = normalized(torch.nn.Identity())
        self.converted_from_cache: bool | None = None
        if chosen == "torch":
            # Folding BN into the convolutions is exact in eval mode and saves one pass over every activation.
            from torch.fx.experimental.optimization import fuse
            fused = normalized(fuse(model)).to(self.device, memory_format=torch.channels_last)
            self.runner: backends.Runner = backends.TorchRunner(fused, precision, self.device)
        else:
            path, self.converted_from_cache = onnx_file(normalized(model), Path(cache_dir) if cache_dir
                                                        else default_cache_dir())
            runner_type = backends.OpenVinoRunner if chosen == "openvino" else backends.OnnxRuntimeRunner
            self.runner = runner_type(path, precision, threads)
        self.backend = chosen
        self.precision = precision
        self.threads = threads

    def describe(self) -> dict:
        """What /info, the responses and the startup log say is being served."""
        return {"backend": self.backend, "precision": self.precision}

    def normalize(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW, as every backend's graph does it (tests compare it with torchvision)."""
        return self._normalizer.normalize(batch_nhwc)

    def logits(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        return self.runner.logits(batch_nhwc)

    def probabilities(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.runner.logits(batch_nhwc), dim=1)

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


def convert() -> int:
    """Export the model MODEL_WEIGHTS names into MODEL_CACHE_DIR now (the Dockerfile runs it at build time)."""
    from inference.config import ConfigError, ServiceConfig

    try:
        config = ServiceConfig.from_env()
        path, cached = onnx_file(normalized(build_reference_model(config.model_weights)),
                                 Path(config.model_cache_dir) if config.model_cache_dir else default_cache_dir())
    except (ConfigError, WeightsError) as exc:
        print(f"cannot convert: {exc}")
        return 2
    print(f"{'already cached' if cached else 'exported'}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m inference.model --available-or-random | --convert`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m inference.model")
    job = parser.add_mutually_exclusive_group(required=True)
    job.add_argument("--available-or-random", action="store_true",
                     help="print the MODEL_WEIGHTS `make serve` should use: imagenet if it loads, else random")
    job.add_argument("--convert", action="store_true",
                     help="export MODEL_WEIGHTS for OpenVINO/ONNX Runtime into MODEL_CACHE_DIR (build time)")
    args = parser.parse_args(argv)
    return available_or_random() if args.available_or_random else convert()


if __name__ == "__main__":
    raise SystemExit(main())
