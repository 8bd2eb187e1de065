"""The service's settings: every knob, its default, its unit and its validation, in one place.

Each field reads the environment variable of the same name in upper case. `ServiceConfig.from_env()`
raises `ConfigError` naming the variable, the bad value and the accepted range; the gunicorn config and
`create_app()` turn that into a clear message and exit status 2 before anything is loaded. The reading,
range checks and their wording are the shared ones of settings/; this module keeps the fields and the
checks between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Mapping

from inference.cpu_quota import quota_cpus, read_quota
from settings import SettingError, check_fields, read_values, setting

MiB = 1024 * 1024
# MAX_QUEUE's default in batches: a bound on memory that MAX_QUEUE_WAIT_MS reaches first on any CPU that
# takes more than about 8 ms per image.
QUEUE_BATCHES = 8
# Kept here, not in inference/backends.py, so the gunicorn master reads its settings without importing torch.
BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(SettingError):
    """A setting has a value outside its range; the message names the variable and the value."""


def available_cpus() -> int:
    """CPUs this process may use: its affinity (which containers and taskset restrict), or fewer where a CPU
    quota (a container's CPU limit) allows fewer whole CPUs; at least 1."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cpus = max(1, os.cpu_count() or 1)
    return min(cpus, quota_cpus(read_quota()) or cpus)


@dataclass(frozen=True)
class ServiceConfig:
    # --- model ---
    model_weights: str = setting("imagenet", env="MODEL_WEIGHTS", doc=(
        "`imagenet` (torchvision's ResNet18_Weights.IMAGENET1K_V1, from the torch cache or "
        "downloaded), a path to a state dict (.pth), or `random` (tests and offline demos: predictions are "
        "meaningless, and every response says so)."))
    device: str = setting("cpu", env="DEVICE", choices=("cpu", "cuda", "auto"), doc=(
        "`cpu`, `cuda` or `auto` (cuda when available). CPU is what the project is sized and tested for."))
    model_backend: str = setting("auto", env="MODEL_BACKEND", choices=BACKENDS, doc=(
        "what runs the forward: `torch` (the reference), `openvino`, `onnxruntime`, or `auto`: the fastest "
        "one installed whose FP32 results equal torch's within 1e-4 (OpenVINO, then ONNX Runtime, then torch)."))
    model_precision: str = setting("auto", env="MODEL_PRECISION", choices=PRECISIONS, doc=(
        "`auto`: bf16 where the CPU computes it natively (AVX512_BF16, AMX) and the backend is OpenVINO, "
        "whose own default that is; fp32 elsewhere. `fp32`: exact (OpenVINO gets an explicit f32 hint). "
        "`bf16`: forced; refused where the CPU would emulate it. bf16 is 2x (AVX512_BF16) to 6x (AMX) "
        "faster, with logits off by under 0.5% of the largest (docs/service.md has the measured agreement)."))
    model_cache_dir: str = setting("", env="MODEL_CACHE_DIR", doc=(
        "where the model converted for OpenVINO/ONNX Runtime is kept, keyed by a hash of the weights; empty "
        "means $XDG_CACHE_HOME/resnet18-inference (~/.cache/...). The image bakes it in at build time."))
    torch_threads: int = setting(0, env="TORCH_THREADS", unit="threads", lo=0, hi=256, doc=(
        "intra-op threads per worker, for whichever backend runs the model (the name predates the other "
        "backends); 0 means the CPUs this process may use (its affinity, or the whole CPUs a CPU quota allows "
        "where that is fewer) divided by the gunicorn workers, at least 1 (oversubscribed threads are the "
        "classic CPU-serving trap)."))
    model_thread_nice: int = setting(5, env="MODEL_THREAD_NICE", unit="nice levels", lo=0, hi=19, doc=(
        "how much lower the model thread's CPU priority is than the request threads': a 503 or a probe is "
        "answered at once even while a forward holds every core; 0 turns it off."))
    warmup_batches: int = setting(1, env="WARMUP_BATCHES", unit="rounds", lo=0, hi=100, doc=(
        "rounds of warm-up forwards before the worker reports ready, so the first real request does not pay "
        "for lazy initialisation: a single image (and, on torch, which builds kernels per shape, a full batch "
        "too). One round is what that needs; each further one adds its forwards to every start-up."))

    # --- batching and admission ---
    max_batch_size: int = setting(8, env="MAX_BATCH_SIZE", unit="images", lo=1, hi=256, doc=(
        "images per forward; 8 is where throughput per core levels off on CPU."))
    max_batch_delay_ms: float = setting(0.0, env="MAX_BATCH_DELAY_MS", unit="ms", lo=0, hi=1000, doc=(
        "how long the model thread waits for more images once one is waiting; 0 starts the forward at once, "
        "because under load batches fill by themselves while the previous forward runs, and a wait before a "
        "lone image's forward is time the core sits idle (2 ms of it put p99 at 70% load 16% higher on a "
        "Zen 5 core). Worth a little only where a batch costs far less per image than single images."))
    max_queue_wait_ms: float = setting(500.0, env="MAX_QUEUE_WAIT_MS", unit="ms", lo=0, hi=3_600_000, doc=(
        "the longest a request may be predicted to take until its forward ends (the images ahead of it, then "
        "its own batch, at the seconds per image the queue recently drained at) and still be admitted; others "
        "get 503 at once, with Retry-After. Never less than two full batches' forwards (one running, one "
        "waiting). 500 ms is the ConfigMap's SLO_P95_MS: a request that would take longer is sure to miss the "
        "SLO, and is better retried elsewhere at once. 0: by MAX_QUEUE only."))
    max_queue: int = setting(0, env="MAX_QUEUE", unit="images", lo=0, hi=100000, doc=(
        "a hard bound on the images admitted per worker (memory, request threads), whatever "
        "MAX_QUEUE_WAIT_MS allows; 0 means 8 x MAX_BATCH_SIZE."))
    cpu_quota_target: float = setting(0.0, env="CPU_QUOTA_TARGET", unit="fraction of the quota", lo=0, hi=1,
                                      doc=(
        "under a CPU limit (a CFS quota), the share of its quota a worker lets itself use in any one period "
        "(inference/cpu_quota.py): the model thread waits before a forward that would use more, so the kernel "
        "never stops the worker for the rest of a period (up to 50 ms of 100 with a `500m` limit), and a 503 "
        "comes in milliseconds. It costs capacity: 0.9 served three quarters of what the unpaced worker did on "
        "half a Zen 5 core, for a 503 p99 of 6-8 ms against 40-50. For a worker on cores of its own (pinned, or "
        "the kubelet's static CPU manager): elsewhere its request threads' CPU shares the budget. 0 (the "
        "default) paces nothing; without a quota nothing is paced either."))
    request_timeout_s: float = setting(10.0, env="REQUEST_TIMEOUT_S", unit="s", lo=0.001, hi=3600, doc=(
        "a request whose inference has not started by then gets 504 and is dropped, never computed."))

    # --- input limits ---
    max_body_bytes: int = setting(20 * MiB, env="MAX_BODY_BYTES", unit="bytes", lo=1, hi=2**31, doc=(
        "largest request body; larger gets 413 before it is read."))
    max_image_pixels: int = setting(40_000_000, env="MAX_IMAGE_PIXELS", unit="pixels", lo=1, hi=2**31, doc=(
        "largest image (width x height), checked from the header before any pixel "
        "is decoded, so decompression bombs get 413."))

    # --- HTTP server (read by inference/gunicorn.conf.py) ---
    port: int = setting(8000, env="PORT", lo=1, hi=65535, doc="TCP port to listen on.")
    bind_host: str = setting("0.0.0.0", env="BIND_HOST", doc=(
        "address to listen on; 0.0.0.0 in a container, 127.0.0.1 for the local stack."))
    web_concurrency: int = setting(1, env="WEB_CONCURRENCY", unit="processes", lo=1, hi=256, doc=(
        "gunicorn workers at start; one per pod in Kubernetes, the local "
        "autoscaler adds and removes workers with TTIN/TTOU."))
    worker_cpus: int = setting(0, env="WORKER_CPUS", unit="CPUs", lo=0, hi=256, doc=(
        "CPUs each gunicorn worker is pinned to (its model thread and its request threads alike), the ones "
        "its live siblings hold least of those the master may use; 0: no pinning. The local stack sets 1, so "
        "that a worker is worth one core as a pod with a 1-CPU limit is: unpinned, a worker's decoding and "
        "HTTP threads spill onto the other cores, and a second worker adds less than a worker's worth. Leave "
        "0 in a pod, whose CPU limit already does this."))
    accept_yield_depth: int = setting(0, env="ACCEPT_YIELD_DEPTH", unit="images", lo=0, hi=100000, doc=(
        "images waiting for this worker's model at which it leaves new connections to its sibling workers "
        "for ACCEPT_YIELD_MS (inference/worker.py); 0 means MAX_BATCH_SIZE: a full batch is already waiting."))
    accept_yield_ms: float = setting(3.0, env="ACCEPT_YIELD_MS", unit="ms", lo=0, hi=1000, doc=(
        "how long a busy worker leaves a new connection to a sibling before taking it itself; at most this "
        "is added to an answer. A worker with less than a batch of room left, by the count or the predicted "
        "wait, never pauses, so the 503s of an overload are not delayed. 0 turns the sharing off (plain "
        "gthread)."))
    gunicorn_threads: int = setting(0, env="GUNICORN_THREADS", unit="threads", lo=0, hi=1024, doc=(
        "request threads per worker (decode and preprocess run there); 0 means "
        "MAX_QUEUE + MAX_BATCH_SIZE + 4: one per image that may wait for the model or be in a forward, plus "
        "spare threads that are always free to answer 503s and probes."))
    graceful_timeout_s: float = setting(30.0, env="GRACEFUL_TIMEOUT_S", unit="s", lo=1, hi=3600, doc=(
        "how long a stopping worker may take to finish what it has in flight; longer "
        "than REQUEST_TIMEOUT_S plus one forward so nothing admitted is cut off."))
    gunicorn_pidfile: str = setting("", env="GUNICORN_PIDFILE", doc=(
        "pid file of the gunicorn master (the local autoscaler signals it); workers "
        "also mark readiness next to it as <pidfile>.<pid>.ready."))
    prometheus_multiproc_dir: str = setting("", env="PROMETHEUS_MULTIPROC_DIR", doc=(
        "directory where workers share metrics (wiped at start); empty means a fresh temporary directory."))

    @property
    def queue_limit(self) -> int:
        return self.max_queue or QUEUE_BATCHES * self.max_batch_size

    @property
    def threads_per_worker(self) -> int:
        return self.gunicorn_threads or self.queue_limit + self.max_batch_size + 4

    @property
    def torch_threads_effective(self) -> int:
        return self.torch_threads or max(1, available_cpus() // self.web_concurrency)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "ServiceConfig":
        """The defaults, then the environment (a blank variable counts as unset), then `overrides`; validated."""
        values = read_values(cls, environ, blank_env_is_unset=True, error=ConfigError)
        return cls(**{**values, **overrides}).validate()

    def validate(self) -> "ServiceConfig":
        """A copy with every value converted to its field's type and checked; raises ConfigError."""
        checked = replace(self, **check_fields(self, ConfigError))
        checked._check_relations()
        return checked

    def _check_relations(self) -> None:
        if self.max_queue and self.max_queue < self.max_batch_size:
            raise ConfigError(f"MAX_QUEUE={self.max_queue} is smaller than MAX_BATCH_SIZE={self.max_batch_size}: "
                              "batches could never fill; raise MAX_QUEUE or set it to 0 for the default")
        if self.graceful_timeout_s <= self.request_timeout_s:
            raise ConfigError(f"GRACEFUL_TIMEOUT_S={self.graceful_timeout_s} must be longer than "
                              f"REQUEST_TIMEOUT_S={self.request_timeout_s}, or stopping workers cut requests off")
