"""One forward over a batch of preprocessed images on the chosen backend, and the top-k of its answer.

Nothing here imports torch unless the torch backend is chosen or a model has to be converted: the runtime
image has no torch, and a worker that does not use it does not pay for its import (about a second).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference import backends, model_cache
from inference.config import available_cpus
from inference.spec import LABELS, MODEL_NAME, WeightsError, weights_label

__all__ = ["LABELS", "MODEL_NAME", "Classifier", "Prediction", "WeightsError", "converted_model", "main"]

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    index: int
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "score": self.score}


def converted_model(weights: str, cache_dir: Path) -> tuple[Path, bool]:
    """The ONNX model for MODEL_WEIGHTS=`weights`: (path, from the cache); converted now where torch is."""
    path, problem = model_cache.lookup(weights, cache_dir)
    if path is not None:
        return path, True
    if not backends.installed("torch"):
        raise WeightsError(
            f"MODEL_WEIGHTS={weights!r} has no converted model in the cache {cache_dir}"
            f"{' (' + problem + ')' if problem else ''}, and torch, which converts it, is not installed here "
            "(the service's image leaves it out): use an image built with these weights converted into "
            "MODEL_CACHE_DIR (docs/kubernetes.md#choosing-the-weights)"
            + ("" if weights == "random" else ", or MODEL_WEIGHTS=random"))
    from inference.conversion import onnx_file

    return onnx_file(weights, cache_dir)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Classifier:
    """ResNet-18 on the chosen backend: uint8 NHWC batches in, probabilities and top-k out.

    torch is the reference (batch-norm folded into the convolutions, channels_last); OpenVINO and ONNX
    Runtime run the same weights exported to ONNX (inference/conversion.py), with the threads given.
    """

    def __init__(self, weights: str = "random", device: str = "cpu", backend: str = "auto",
                 precision: str = "auto", threads: int | None = None, cache_dir: str | Path | None = None,
                 cpu_flags: frozenset[str] | None = None):
        self.weights = weights_label(weights)
        self.device = _device(device)
        flags = backends.cpu_flags() if cpu_flags is None else cpu_flags
        chosen = backends.choose(backend, precision, self.device, flags)
        precision = backends.served_precision(precision, chosen, flags)
        threads = threads or available_cpus()
        self.converted_from_cache: bool | None = None
        if chosen == "torch":
            self.runner: backends.Runner = backends.TorchRunner(weights, precision, self.device, threads)
        else:
            cache = Path(cache_dir) if cache_dir else model_cache.default_cache_dir()
            path, self.converted_from_cache = converted_model(weights, cache)
            try:
                if chosen == "openvino":
                    self.runner = backends.OpenVinoRunner(path, precision, threads,
                                                          model_cache.compiled_cache_dir(cache))
                else:
                    self.runner = backends.OnnxRuntimeRunner(path, precision, threads)
            finally:
                # An export the cache could not take went to a private temporary file: both runtimes have read
                # it by now, and every worker start would otherwise leave 45 MB behind in the temp directory.
                if path.parent != cache:
                    path.unlink(missing_ok=True)
        self.backend = chosen
        self.precision = precision
        self.threads = threads

    def describe(self) -> dict:
        """What /info, the responses and the startup log say is being served."""
        return {"backend": self.backend, "precision": self.precision}

    def logits(self, batch_nhwc: np.ndarray) -> np.ndarray:
        return self.runner.logits(np.ascontiguousarray(batch_nhwc, dtype=np.uint8))

    def probabilities(self, batch_nhwc: np.ndarray) -> np.ndarray:
        return softmax(self.logits(batch_nhwc))

    @staticmethod
    def top_k(probs: np.ndarray, k: int) -> list[list[Prediction]]:
        k = min(k, probs.shape[1])
        # Highest first; equal scores in index order, as torch.topk gives them.
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[Prediction(int(i), LABELS[int(i)], round(float(row[i]), 6)) for i in indices]
                for row, indices in zip(probs, order)]

    def warm_up(self, rounds: int, batch_size: int) -> None:
        """Run what the first real requests would otherwise initialise lazily. OpenVINO and ONNX Runtime build
        their kernels when the model is compiled or loaded: one single-image forward readies the runtime, and
        the first full batch afterwards pays about 0.1 s once, less than a full-batch warm-up would add to every
        start-up (docs/benchmarks.md). torch creates its kernels per input shape on first use: it also runs a
        full batch."""
        dummy = np.zeros((batch_size if self.backend == "torch" else 1, 224, 224, 3), dtype=np.uint8)
        for _ in range(rounds):
            self.probabilities(dummy[:1])
            if len(dummy) > 1:
                self.probabilities(dummy)


def _device(spec: str) -> str:
    """`cpu`, or what torch says `auto`/`cuda` mean here (without torch there is no CUDA to use)."""
    if spec == "cpu" or (spec == "auto" and not backends.installed("torch")):
        return "cpu"
    backends.require("torch")
    from inference.reference import resolve_device

    return resolve_device(spec).type


def convert() -> int:
    """Export the model MODEL_WEIGHTS names into MODEL_CACHE_DIR now (the Dockerfile runs it at build time)."""
    from inference.config import ConfigError, ServiceConfig

    try:
        config = ServiceConfig.from_env()
        path, cached = converted_model(config.model_weights, Path(config.model_cache_dir) if config.model_cache_dir
                                       else model_cache.default_cache_dir())
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
    if args.available_or_random:
        from inference.reference import available_or_random

        return available_or_random()
    return convert()


if __name__ == "__main__":
    raise SystemExit(main())
