"""The service's settings: every knob, its default, its unit and its validation, in one place.

Each field reads the environment variable of the same name in upper case. `ServiceConfig.from_env()`
raises `ConfigError` naming the variable, the bad value and the accepted range; the gunicorn config and
`create_app()` turn that into a clear message and exit status 2 before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Mapping

MiB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value outside its range; the message names the variable and the value."""


def available_cpus() -> int:
    """CPUs this process may run on (affinity, which containers and taskset restrict), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _meta(env: str, unit: str, doc: str, lo: float | None = None, hi: float | None = None,
          choices: tuple[str, ...] | None = None) -> dict:
    return {"env": env, "unit": unit, "doc": doc, "lo": lo, "hi": hi, "choices": choices}


@dataclass(frozen=True)
class ServiceConfig:
    # --- model ---
    model_weights: str = field(default="imagenet", metadata=_meta(
        "MODEL_WEIGHTS", "", "`imagenet` (torchvision's ResNet18_Weights.IMAGENET1K_V1, from the torch cache or "
        "downloaded), a path to a state dict (.pth), or `random` (tests and offline demos: predictions are "
        "meaningless, and every response says so)."))
    device: str = field(default="cpu", metadata=_meta(
        "DEVICE", "", "`cpu`, `cuda` or `auto` (cuda when available). CPU is what the project is sized and "
        "tested for.", choices=("cpu", "cuda", "auto")))
    torch_threads: int = field(default=0, metadata=_meta(
        "TORCH_THREADS", "threads", "intra-op threads per worker; 0 means the CPUs this process may use divided "
        "by the gunicorn workers, at least 1 (oversubscribed threads are the classic CPU-serving trap).",
        lo=0, hi=256))
    warmup_batches: int = field(default=2, metadata=_meta(
        "WARMUP_BATCHES", "forwards", "forwards run at start-up, before the worker reports ready, so the first "
        "real request does not pay for lazy initialisation.", lo=0, hi=100))

    # --- batching and admission ---
    max_batch_size: int = field(default=8, metadata=_meta(
        "MAX_BATCH_SIZE", "images", "images per forward; 8 is where throughput per core levels off on CPU.",
        lo=1, hi=256))
    max_batch_delay_ms: float = field(default=2.0, metadata=_meta(
        "MAX_BATCH_DELAY_MS", "ms", "how long the model thread waits for more images once one is waiting; small, "
        "because under load batches fill by themselves while the previous forward runs.", lo=0, hi=1000))
    max_queue: int = field(default=0, metadata=_meta(
        "MAX_QUEUE", "images", "images waiting per worker before new requests get 503 at once; 0 means "
        "3 x MAX_BATCH_SIZE (a few batches: enough to keep the model busy, short enough to bound latency).",
        lo=0, hi=100000))
    request_timeout_s: float = field(default=10.0, metadata=_meta(
        "REQUEST_TIMEOUT_S", "s", "a request whose inference has not started by then gets 504 and is dropped, "
        "never computed.", lo=0.001, hi=3600))

    # --- input limits ---
    max_body_bytes: int = field(default=20 * MiB, metadata=_meta(
        "MAX_BODY_BYTES", "bytes", "largest request body; larger gets 413 before it is read.", lo=1, hi=2**31))
    max_image_pixels: int = field(default=40_000_000, metadata=_meta(
        "MAX_IMAGE_PIXELS", "pixels", "largest image (width x height), checked from the header before any pixel "
        "is decoded, so decompression bombs get 413.", lo=1, hi=2**31))

    # --- HTTP server (read by inference/gunicorn.conf.py) ---
    port: int = field(default=8000, metadata=_meta("PORT", "", "TCP port to listen on.", lo=1, hi=65535))
    bind_host: str = field(default="0.0.0.0", metadata=_meta(
        "BIND_HOST", "", "address to listen on; 0.0.0.0 in a container, 127.0.0.1 for the local stack."))
    web_concurrency: int = field(default=1, metadata=_meta(
        "WEB_CONCURRENCY", "processes", "gunicorn workers at start; one per pod in Kubernetes, the local "
        "autoscaler adds and removes workers with TTIN/TTOU.", lo=1, hi=256))
    gunicorn_threads: int = field(default=0, metadata=_meta(
        "GUNICORN_THREADS", "threads", "request threads per worker (decode and preprocess run there); 0 means "
        "MAX_QUEUE + MAX_BATCH_SIZE + 4: one per image that may wait for the model or be in a forward, plus "
        "spare threads that are always free to answer 503s and probes.",
        lo=0, hi=1024))
    graceful_timeout_s: float = field(default=30.0, metadata=_meta(
        "GRACEFUL_TIMEOUT_S", "s", "how long a stopping worker may take to finish what it has in flight; longer "
        "than REQUEST_TIMEOUT_S plus one forward so nothing admitted is cut off.", lo=1, hi=3600))
    gunicorn_pidfile: str = field(default="", metadata=_meta(
        "GUNICORN_PIDFILE", "", "pid file of the gunicorn master (the local autoscaler signals it); workers "
        "also mark readiness next to it as <pidfile>.<pid>.ready."))
    prometheus_multiproc_dir: str = field(default="", metadata=_meta(
        "PROMETHEUS_MULTIPROC_DIR", "", "directory where workers share metrics (wiped at start); empty means a "
        "fresh temporary directory."))

    @property
    def queue_limit(self) -> int:
        return self.max_queue or 3 * self.max_batch_size

    @property
    def threads_per_worker(self) -> int:
        return self.gunicorn_threads or self.queue_limit + self.max_batch_size + 4

    @property
    def torch_threads_effective(self) -> int:
        return self.torch_threads or max(1, available_cpus() // self.web_concurrency)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "ServiceConfig":
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f, raw.strip())
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            name = meta["env"]
            if meta["choices"] and value not in meta["choices"]:
                raise ConfigError(f"{name}={value!r} is not one of {', '.join(meta['choices'])}")
            if meta["lo"] is not None and not (meta["lo"] <= value <= meta["hi"]):
                raise ConfigError(f"{name}={value!r} is out of range: expected {meta['lo']}..{meta['hi']}"
                                  + (f" {meta['unit']}" if meta["unit"] else ""))
        if self.max_queue and self.max_queue < self.max_batch_size:
            raise ConfigError(f"MAX_QUEUE={self.max_queue} is smaller than MAX_BATCH_SIZE={self.max_batch_size}: "
                              "batches could never fill; raise MAX_QUEUE or set it to 0 for the default")
        if self.graceful_timeout_s <= self.request_timeout_s:
            raise ConfigError(f"GRACEFUL_TIMEOUT_S={self.graceful_timeout_s} must be longer than "
                              f"REQUEST_TIMEOUT_S={self.request_timeout_s}, or stopping workers cut requests off")

    @classmethod
    def describe(cls) -> list[tuple[str, str, str, str]]:
        """(env var, default, unit, meaning) rows, for the README's configuration table."""
        rows = []
        for f in dataclasses.fields(cls):
            rows.append((f.metadata["env"], str(f.default), f.metadata["unit"], f.metadata["doc"]))
        return rows


def _parse(f: dataclasses.Field, raw: str) -> object:
    name = f.metadata["env"]
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "int":
            try:
                return int(raw)
            except ValueError:
                # Accept 40e6 for a pixel count, but never silently round 2.5 workers.
                value = float(raw)
                if not value.is_integer():
                    raise
                return int(value)
        if kind == "float":
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {'integer' if kind == 'int' else 'number'}") from None
    return raw
