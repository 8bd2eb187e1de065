"""What one replica of the service costs in time: the figures the simulated replicas run on.

A `Profile` is one worker (TORCH_THREADS=1, one core: the unit the project sizes a replica by):

    latency of a request = preprocess + its wait for the model thread + model(batch) + overhead

(unloaded, the wait is MAX_BATCH_DELAY_MS: a lone image waits that long for company)
    model(b)             = model_intercept_ms + model_per_image_ms x b     (b = images in the forward)

Each field says what it is calibrated from. Three sources, which `sim.profile_sources.load_profile(path)` tells
apart:

- the capacity probe's JSON (`python -m loadtester --find-capacity --json FILE`, a CapacityReport);
- the local stack's calibration cache (`.cache/calibration/capacity-*.json`, written by
  local/calibration.py: {"measured_at", "machine", "report": <the same CapacityReport>});
- a profile JSON of the simulator's own ({"format": "sim-profile", <the fields below>}), e.g. one that
  `Profile.as_dict()` wrote and a person edited.

From a probe the model line is fitted to two measured points: a full batch takes the forward's median
Server-Timing at saturation (`model_ms_at_saturation`; MAX_BATCH_SIZE / saturation only when the probe has
no Server-Timing), and one image takes the unloaded latency minus preprocess, the default overhead and the
batching delay (the probe does not separate them). So the simulated replica is as fast unloaded as the
measured one and, with a queue, runs full batches back to back as the real model thread does: the forward,
not the probe's closed-loop saturation, is what decides when a queue builds (the recorded runs behind this
choice: docs/benchmarks.md#how-the-simulators-replica-was-calibrated-2026-12-01).

The overhead then absorbs what the load tester sees beyond that: it is raised by the mean gap between the
probe's open-loop steps below the knee (<= LIGHT_STEP_FRACTION of saturation) and the same arrivals replayed
through the fitted replica (`sim.profile_sources.replay_step`; the overhead comes after the forward, so it
moves latencies and no batch).

The default profile is the project's 2-core AMD EPYC development machines (docs/benchmarks.md): one image's
forward 25 ms, a full batch of 8 133.3 ms (60 req/s); the autoscaler's figures are planning/sizing.py's
derivation from the same figures. A worker's start-up is 0.6 s, what fork-to-ready measured once OpenVINO's
compiled model came from the cache (docs/benchmarks.md: 0.45-0.61 s on the AVX2 EPYC, 0.4 s on the AMX Xeon).

For the cluster case a pod's start-up is longer than a local worker's fork-to-ready: `pod_overhead_s`
(scheduling, container start, the startup probe's 2 s period; image already on the node) is added.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from inference.config import ServiceConfig
from loadtester.capacity_report import littles_law_inflight
from planning.sizing import slo_ms_for, sustained_rps
from sim.batch_time import BatchTime

PROFILE_FORMAT = "sim-profile"
# The service's own defaults: a simulated replica batches and queues as a real one does.
_SERVICE = ServiceConfig()
# Not measured by the probe (its unloaded latency is their sum with the batching delay and model(1)): the
# decoding of a bundled image in JPEG draft mode, and the HTTP handling around a request (what a 503 costs:
# docs/benchmarks.md measured 503s' p99 at 10-13 ms under 2x overload, most of it queueing for a thread).
DEFAULT_PREPROCESS_MS = 1.5
DEFAULT_OVERHEAD_MS = 0.5
# The development machines' model line: model(1) = 25 ms (one image's forward, unloaded), model(8) = 133.3 ms
# (8 / 60 req/s: a full batch at saturation).
DEFAULT_MODEL_INTERCEPT_MS = 9.524
DEFAULT_MODEL_PER_IMAGE_MS = 15.476
DEFAULT_FULL_BATCH_MS = DEFAULT_MODEL_INTERCEPT_MS + _SERVICE.max_batch_size * DEFAULT_MODEL_PER_IMAGE_MS
DEFAULT_SATURATION_RPS = _SERVICE.max_batch_size * 1000.0 / DEFAULT_FULL_BATCH_MS
DEFAULT_UNLOADED_MS = DEFAULT_PREPROCESS_MS + _SERVICE.max_batch_delay_ms + DEFAULT_MODEL_INTERCEPT_MS + DEFAULT_MODEL_PER_IMAGE_MS + \
    DEFAULT_OVERHEAD_MS
# The probe's mean latency at 54 req/s on those machines: what Little's law turns into the in-flight target.
DEFAULT_MEAN_MS_AT_CAPACITY = 125.0
# Kubernetes on top of a worker's own start: scheduling (~0.5 s), container start (~1 s) and, on average,
# half of the startup probe's 2 s period (k8s/inference-deployment.yaml) before the pod counts as ready.
DEFAULT_POD_OVERHEAD_S = 2.5
# A worker's fork to ready with the converted and compiled model cached, as an image bakes them in.
DEFAULT_STARTUP_S = 0.6
# Spread of a pod's start-up (lognormal sigma): a node under load starts a pod slower, never faster by much.
DEFAULT_STARTUP_SIGMA = 0.2


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Profile:
    source: str = "default: the 2-core AMD EPYC development machines (docs/benchmarks.md)"
    # --- one replica's timings ------------------------------------------------------------------
    model_intercept_ms: float = DEFAULT_MODEL_INTERCEPT_MS
    model_per_image_ms: float = DEFAULT_MODEL_PER_IMAGE_MS
    preprocess_ms: float = DEFAULT_PREPROCESS_MS   # decode + preprocess of one image, before it is queued
    overhead_ms: float = DEFAULT_OVERHEAD_MS       # HTTP handling of one request (also a 503's whole latency)
    # --- the service's settings (its defaults; a probe's /info when it has them) -----------------------
    max_batch_size: int = _SERVICE.max_batch_size
    max_batch_delay_ms: float = _SERVICE.max_batch_delay_ms
    queue_limit: int = _SERVICE.queue_limit
    queue_wait_ms: float = _SERVICE.max_queue_wait_ms   # MAX_QUEUE_WAIT_MS; 0: admission by count only
    request_timeout_s: float = _SERVICE.request_timeout_s
    # --- start-up -------------------------------------------------------------------------------
    startup_s: float = DEFAULT_STARTUP_S     # fork to ready of one worker (local/calibration.py measures it)
    startup_sigma: float = DEFAULT_STARTUP_SIGMA
    pod_overhead_s: float = DEFAULT_POD_OVERHEAD_S
    # --- what the autoscaler is told: planning/sizing.py's derivation from the same figures -------------
    slo_ms: float = slo_ms_for(DEFAULT_FULL_BATCH_MS, DEFAULT_UNLOADED_MS)     # 450 ms
    capacity_within_slo_rps: float = round(sustained_rps(DEFAULT_SATURATION_RPS), 2)   # 54 req/s
    target_inflight_per_replica: float = round(littles_law_inflight(
        round(sustained_rps(DEFAULT_SATURATION_RPS), 2), DEFAULT_MEAN_MS_AT_CAPACITY), 2)   # 6.75

    # --- derived ----------------------------------------------------------------------------------
    @property
    def batch_time(self) -> BatchTime:
        """The forward's time as the one line the simulator and the benchmark's ideal queue share."""
        return BatchTime(self.model_intercept_ms, self.model_per_image_ms)

    def model_s(self, images: int) -> float:
        return self.batch_time(images)

    @property
    def saturation_rps(self) -> float:
        """Requests per second one replica answers when every forward is a full batch."""
        return self.max_batch_size / self.model_s(self.max_batch_size)

    @property
    def unloaded_ms(self) -> float:
        return self.preprocess_ms + self.max_batch_delay_ms + self.model_s(1) * 1000.0 + self.overhead_ms

    def startup_draws_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Seconds from a scale-up to a pod being ready: a worker's start (lognormal around the measured
        median) plus the cluster's pod overhead."""
        spread = rng.lognormal(0.0, self.startup_sigma, n) if self.startup_sigma > 0 else np.ones(n)
        return self.startup_s * spread + self.pod_overhead_s

    def startup_bound_s(self) -> float:
        """A start-up that 99% of pods beat (what an oracle must plan for)."""
        return self.startup_s * math.exp(2.326 * self.startup_sigma) + self.pod_overhead_s

    def validate(self) -> "Profile":
        for name in ("model_intercept_ms", "preprocess_ms", "overhead_ms", "max_batch_delay_ms", "startup_sigma",
                     "pod_overhead_s", "queue_wait_ms"):
            _check(self, name, getattr(self, name) >= 0, ">= 0")
        for name in ("model_per_image_ms", "request_timeout_s", "startup_s", "slo_ms", "capacity_within_slo_rps",
                     "target_inflight_per_replica"):
            _check(self, name, getattr(self, name) > 0, "> 0")
        _check(self, "max_batch_size", self.max_batch_size >= 1, ">= 1")
        _check(self, "queue_limit", self.queue_limit >= self.max_batch_size,
               f">= max_batch_size ({self.max_batch_size})")
        return self

    def as_dict(self) -> dict:
        return {"format": PROFILE_FORMAT, **asdict(self), "saturation_rps": round(self.saturation_rps, 3),
                "unloaded_ms": round(self.unloaded_ms, 3)}


def _check(profile: Profile, name: str, ok: bool, what: str) -> None:
    if not ok:
        raise ProfileError(f"{profile.source}: {name}={getattr(profile, name)!r} must be {what}")


def default_profile() -> Profile:
    return Profile().validate()
