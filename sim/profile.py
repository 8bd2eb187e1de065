"""What one replica of the service costs in time: the figures the simulated replicas run on.

A `Profile` is one worker (TORCH_THREADS=1, one core: the unit the project sizes a replica by):

    latency of a request = preprocess + its wait for the model thread + model(batch) + overhead

(unloaded, the wait is MAX_BATCH_DELAY_MS: a lone image waits that long for company)
    model(b)             = model_intercept_ms + model_per_image_ms x b     (b = images in the forward)

Each field says what it is calibrated from. Three sources, which `sim.profiles.load_profile(path)` tells
apart:

- the capacity probe's JSON (`python -m loadtester --find-capacity --json FILE`, a CapacityReport);
- the local stack's calibration cache (`.cache/calibration/capacity-*.json`, written by
  local/calibration.py: {"measured_at", "machine", "report": <the same CapacityReport>});
- a profile JSON of the simulator's own ({"format": "sim-profile", <the fields below>}), e.g. one that
  `Profile.as_dict()` wrote and a person edited.

From a probe the model line is fitted to two measured points: a full batch takes the forward's median
Server-Timing at saturation (`model_ms_at_saturation`; MAX_BATCH_SIZE / saturation only when the probe has
no Server-Timing), and one image takes the unloaded latency minus preprocess, the default overhead and the
batching delay (the probe does not separate them; the defaults of the first two are below). So the simulated
replica is as fast unloaded as the measured one and, with a queue, runs full batches back to back as the
real model thread does.

Why the forward and not the probe's closed-loop saturation (which local/sizing.py sizes by): in a recorded
`make compare` (tests/fixtures/sim-calibration/, 2026-12-01, 2-core Zen 5) one worker fed 63 req/s
open-loop for 10 s ran full batches back to back (model thread 99.6-100.3% busy, median gap between
forwards 0.3 ms) of 122.7 and 126.1 ms each: 63.5 and 62.9 req/s, where the probe's closed loop measured
57.6 req/s (139 ms a batch) and a forward of 121.6 ms. A replica fitted to 139 ms saturated 10% early
and turned that run's peak (57-63 req/s for 40 s) into 10 s windows with p95s up to 1.9 s, where the real
ones stayed between 0.26 and 0.6 s.
The same runs' Server-Timing, grouped into batches, measured the forward curve 7.5-8.0 + 14.2-14.6 x b ms
(one worker alone); the probe-fitted line is 8.9 + 14.1 x b, within 1.2 ms of the measured median for every b.

The overhead then absorbs what the load tester sees beyond that: the probe's unloaded latency is measured
closed loop, one request at a time, but a replay's client (and the probe's own open-loop steps, which are
the load tester's Replayer) sees more per request (the recorded run's Server-Timing: 3.6 ms p50 outside
preprocess, queue and forward). The overhead is raised by the mean gap between the probe's open-loop steps
below the knee (<= LIGHT_STEP_FRACTION of saturation) and the same arrivals replayed through the fitted
replica (`sim.profiles.replay_step`; the overhead comes after the forward, so it moves latencies and no batch). On the
recorded calibration this gives 3.97 ms (3.07 and 3.21 on two earlier probes of the same machine), and all
six steps replayed agree within -10%..+12% on p95 and -5%..+4% on the mean; the fit before (a full batch of
8 / saturation, overhead 0.5 ms) was +5%..+45% on p95.

The default profile is this project's measured figures on its 2-core AMD EPYC development machines
(docs/benchmarks.md, docs/local-stack.md): 57.2-60.8 req/s at saturation, unloaded p50 26.7-29 ms (here
29 = 1.5 preprocess + 2 batching delay + 25 model + 0.5 HTTP), a full batch 120-124 ms in the forward and
132-140 ms per batch at saturation (here 133 ms: 60 req/s), worker start-up 2.6-3.3 s (here 2.6 s). It
keeps the closed loop's 133 ms a full batch, where a probe's file now gets its forward (above): about 9%
slower at saturation than a replay found, and the 54 req/s it is told stays 90% of its saturation.

For the cluster case a pod's start-up is longer than a local worker's fork-to-ready: `pod_overhead_s`
(scheduling, container start, the startup probe's 2 s period; image already on the node) is added.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

PROFILE_FORMAT = "sim-profile"
# Not measured by the probe (its unloaded latency is their sum with the batching delay and model(1)): the
# decoding of a bundled image in JPEG draft mode, and the HTTP handling around a request (what a 503 costs:
# docs/benchmarks.md measured 503s' p99 at 10-13 ms under 2x overload, most of it queueing for a thread).
DEFAULT_PREPROCESS_MS = 1.5
DEFAULT_OVERHEAD_MS = 0.5
# Kubernetes on top of a worker's own start: scheduling (~0.5 s), container start (~1 s) and, on average,
# half of the startup probe's 2 s period (k8s/inference-deployment.yaml) before the pod counts as ready.
DEFAULT_POD_OVERHEAD_S = 2.5
# Spread of a pod's start-up (lognormal sigma): a node under load starts a pod slower, never faster by much.
DEFAULT_STARTUP_SIGMA = 0.2


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Profile:
    source: str = "default: the 2-core AMD EPYC development machines (docs/benchmarks.md)"
    # --- one replica's timings ------------------------------------------------------------------
    model_intercept_ms: float = 9.524       # model(1) = 25 ms (the forward of one image, measured unloaded)
    model_per_image_ms: float = 15.476      # model(8) = 133.3 ms = 8 / 60 req/s: a full batch at saturation
    preprocess_ms: float = DEFAULT_PREPROCESS_MS   # decode + preprocess of one image, before it is queued
    overhead_ms: float = DEFAULT_OVERHEAD_MS       # HTTP handling of one request (also a 503's whole latency)
    # --- the service's settings (inference/config.py's defaults; a probe's /info when it has them) ------
    max_batch_size: int = 8
    max_batch_delay_ms: float = 2.0
    queue_limit: int = 24                    # MAX_QUEUE (0 means 3 x MAX_BATCH_SIZE in the service)
    request_timeout_s: float = 10.0
    # --- start-up -------------------------------------------------------------------------------
    startup_s: float = 2.6                   # fork to ready of one worker (local/calibration.py measures it)
    startup_sigma: float = DEFAULT_STARTUP_SIGMA
    pod_overhead_s: float = DEFAULT_POD_OVERHEAD_S
    # --- what the autoscaler is told (local/sizing.py's derivation from the same measurement) ---------
    slo_ms: float = 450.0                    # 3 full batches (133 ms) + unloaded (29 ms), rounded up to 50 ms
    capacity_within_slo_rps: float = 54.0    # 90% of saturation: the probe's cap, which bound on these machines
    target_inflight_per_replica: float = 6.75  # Little's law: 54 req/s x 125 ms mean latency at that rate

    # --- derived ----------------------------------------------------------------------------------
    def model_s(self, images: int) -> float:
        return (self.model_intercept_ms + self.model_per_image_ms * images) / 1000.0

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
                     "pod_overhead_s"):
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
