"""Where the forward runs: PyTorch eager (the reference), OpenVINO or ONNX Runtime, in FP32 or bf16.

Every backend takes the same input, a uint8 NHWC batch straight from preprocessing, and returns
logits; normalisation is part of the graph each one runs (see inference/conversion.py), so nothing
but the forward itself differs between them.

`auto` picks the fastest backend installed that gives FP32 results equal to torch's within 1e-4
(measured in docs/benchmarks.md: OpenVINO, then ONNX Runtime, then torch). The precision `auto` is each
backend's own default: OpenVINO computes in bf16 where the CPU does so natively (its CPU plugin's default
there), every other backend and CPU in FP32. bf16 changes the logits (about 2e-2 here) and is refused
where the CPU has no native bf16, where it would be emulated and slower than FP32.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

log = logging.getLogger(__name__)

# ONNX Runtime (1.31 and later, on Linux too) starts a telemetry uploader when it is imported and keeps a
# device identifier in the home directory; a pod has no writable home and a service has no reason to
# report itself. The switch must be set before the import; a deployment that wants telemetry sets it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# Fastest exact backend first (measured, one thread, batch 1 and 8: OpenVINO 1.50x/1.24x torch, ONNX Runtime
# 1.41x/1.21x on a Zen 5; the same order on AVX2 machines).
AUTO_ORDER = ("openvino", "onnxruntime", "torch")
# The Python module each backend needs.
MODULES = {"torch": "torch", "openvino": "openvino", "onnxruntime": "onnxruntime"}
# Which backends can run bf16 at all (ONNX Runtime's CPU provider has no bf16 convolutions).
BF16_BACKENDS = ("openvino", "torch")
# CPU flags (Linux /proc/cpuinfo names) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class BackendError(RuntimeError):
    """The requested backend or precision cannot run here; the message says why and what to choose."""


class Runner(Protocol):
    name: str
    precision: str

    def logits(self, batch_nhwc: np.ndarray) -> np.ndarray: ...


def installed(backend: str) -> bool:
    """Importable, not merely present: a package whose native library fails to load counts as missing."""
    try:
        importlib.import_module(MODULES[backend])
    except ImportError as exc:
        log.debug("backend %s unavailable: %s", backend, exc)
        return False
    return True


def missing_message(backend: str) -> str:
    return (f"MODEL_BACKEND={backend} but the {MODULES[backend]!r} package is not installed (the service's image "
            "ships OpenVINO and ONNX Runtime, not torch): use MODEL_BACKEND=auto (the fastest one installed), or "
            f"pip install {backend}")


def require(backend: str, is_installed: Callable[[str], bool] = installed) -> None:
    if not is_installed(backend):
        raise BackendError(missing_message(backend))


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(flags: frozenset[str]) -> bool:
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def choose(backend: str, precision: str, device: str, flags: frozenset[str],
           is_installed: Callable[[str], bool] = installed) -> str:
    """The backend to build for MODEL_BACKEND/MODEL_PRECISION/DEVICE, or BackendError saying why not."""
    if precision == "bf16" and not native_bf16(flags):
        raise BackendError(
            f"MODEL_PRECISION=bf16 needs a CPU with native bf16 ({' or '.join(NATIVE_BF16_FLAGS)}); this one "
            f"({platform.processor() or platform.machine()}) has neither, so bf16 would be emulated and slower "
            "than fp32: use MODEL_PRECISION=fp32")
    if device == "cuda":
        if backend not in ("auto", "torch"):
            raise BackendError(f"MODEL_BACKEND={backend} runs on the CPU only; use MODEL_BACKEND=torch (or auto) "
                               "with DEVICE=cuda")
        return "torch"
    if backend == "auto":
        candidates = BF16_BACKENDS if precision == "bf16" else AUTO_ORDER
        return next(name for name in candidates if is_installed(name))
    require(backend, is_installed)
    if precision == "bf16" and backend not in BF16_BACKENDS:
        raise BackendError(f"MODEL_BACKEND={backend} has no bf16 kernels on the CPU; use MODEL_BACKEND="
                           f"{' or '.join(BF16_BACKENDS)} for bf16, or MODEL_PRECISION=fp32")
    return backend


def served_precision(precision: str, backend: str, flags: frozenset[str]) -> str:
    """What MODEL_PRECISION means on `backend` and this CPU: `auto` is bf16 only where OpenVINO would pick it
    by itself (native bf16); fp32 and bf16 are what they say (choose() has refused bf16 where it cannot run)."""
    if precision != "auto":
        return precision
    return "bf16" if backend == "openvino" and native_bf16(flags) else "fp32"


class TorchRunner:
    """The reference: eager PyTorch, batch-norm folded, channels_last; bf16 through CPU autocast."""

    name = "torch"

    def __init__(self, weights: str, precision: str, device: str, threads: int):
        import torch

        from inference.reference import torch_runner_module

        torch.set_num_threads(threads)
        self._torch = torch
        self.precision = precision
        self.device = torch.device(device)
        self._module = torch_runner_module(weights, self.device)

    def logits(self, batch_nhwc: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            batch = torch.from_numpy(batch_nhwc).to(self.device, non_blocking=True)
            return self._module(batch).float().cpu().numpy()


class OpenVinoRunner:
    name = "openvino"

    def __init__(self, onnx_path: Path, precision: str, threads: int, compiled_cache: Path | None = None):
        import openvino

        self.precision = precision
        core = openvino.Core()
        settings = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            # Pinning binds each worker's threads to the first cores; several workers would then share them.
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        self._compiled = None
        if compiled_cache is not None:
            # From the file's path, so that on a cache hit OpenVINO imports the compiled model without reading
            # the ONNX graph at all. The cache only saves time: whatever goes wrong with it (another user's
            # blob it cannot replace, a full disk), the model is compiled without it.
            try:
                core.set_property({"CACHE_DIR": str(compiled_cache)})
                self._compiled = core.compile_model(str(onnx_path), "CPU", settings)
            except RuntimeError as exc:
                log.warning("OpenVINO's compiled-model cache %s is not usable (%s); compiling without it",
                            compiled_cache, str(exc).strip().splitlines()[-1])
                core = openvino.Core()
        if self._compiled is None:
            self._compiled = core.compile_model(str(onnx_path), "CPU", settings)
        # One infer request, reused: the model thread is the only caller.
        self._request = self._compiled.create_infer_request()

    def logits(self, batch_nhwc: np.ndarray) -> np.ndarray:
        result = self._request.infer([batch_nhwc], share_inputs=True)
        return result[self._compiled.output(0)].copy()


class OnnxRuntimeRunner:
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, precision: str, threads: int):
        import onnxruntime

        self.precision = precision
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn the core between batches, which the request threads need for decoding.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def logits(self, batch_nhwc: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch_nhwc})[0]
