"""What one replica of the service costs in time: the figures the simulated replicas run on.

A `Profile` is one worker (TORCH_THREADS=1, one core: the unit the project sizes a replica by):

    latency of a request = preprocess + its wait for the model thread + model(batch) + overhead

(unloaded, the wait is MAX_BATCH_DELAY_MS: a lone image waits that long for company)
    model(b)             = model_intercept_ms + model_per_image_ms x b     (b = images in the forward)

Each field says what it is calibrated from. Three sources, `load_profile(path)` tells them apart:

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
replica (`replay_step`; the overhead comes after the forward, so it moves latencies and no batch). On the
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

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from loadtester.capacity_report import CapacityReport
from local.sizing import derive

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


def from_capacity_report(report: CapacityReport, source: str, preprocess_ms: float = DEFAULT_PREPROCESS_MS,
                         overhead_ms: float = DEFAULT_OVERHEAD_MS, fit_overhead: bool = True) -> Profile:
    """A profile fitted to a probe's measurement of one deployment (divided by its replicas). With
    `fit_overhead`, the overhead then absorbs the gap between the probe's lightest open-loop step's p50 and
    the same step replayed through the fitted replica (see the module's docstring)."""
    info = report.info or {}
    saturation = report.saturation_rps / report.replicas
    batch = int(report.max_batch_size or info.get("max_batch_size") or 8)
    full_ms = report.model_ms_at_saturation or batch * 1000.0 / saturation
    delay_ms = float(info.get("max_batch_delay_ms", 2.0))
    one_ms = max(report.unloaded_p50_ms - preprocess_ms - overhead_ms - delay_ms, 0.1)
    slope = (full_ms - one_ms) / (batch - 1) if batch > 1 else full_ms
    if slope <= 0:  # a single image as slow as a full batch: only the batch's time is known
        slope, one_ms = full_ms / batch, full_ms / batch
    sizing = derive(report, quick=False, max_replicas=1)
    profile = Profile(
        source=source, model_intercept_ms=round(one_ms - slope, 4), model_per_image_ms=round(slope, 4),
        preprocess_ms=preprocess_ms, overhead_ms=overhead_ms, max_batch_size=batch,
        max_batch_delay_ms=delay_ms,
        queue_limit=int(info.get("max_queue") or 3 * batch),
        request_timeout_s=float(info.get("request_timeout_s", 10.0)),
        startup_s=float(report.startup_s or Profile.startup_s),
        slo_ms=sizing.slo_ms, capacity_within_slo_rps=sizing.capacity_within_slo_rps,
        target_inflight_per_replica=sizing.target_inflight_per_replica).validate()
    light = light_steps(report) if fit_overhead else []
    if light:
        # The overhead comes after the forward, so it moves every latency and no batch: the gap in the means is
        # exactly what it lacks.
        gap_ms = float(np.mean([step.mean_ms - replay_step(profile, report, (k, step))["mean_ms"]
                                for k, step in light]))
        profile = replace(profile, overhead_ms=round(max(overhead_ms + gap_ms, 0.0), 3))
    return profile


# The probe's open-loop steps (loadtester/capacity.py _open_step): `requests` arrivals drawn uniformly over the
# step (Poisson conditioned on its count) by numpy's generator seeded with the probe's seed + the step's index.
# The report keeps neither the seed nor the step's length: the probe's default seed (0) and
# requests / offered_rps seconds are what the local calibration and the CLI's defaults use.
PROBE_SEED = 0


# The steps the overhead is fitted on: below the knee, where latency is the service's path and short queues,
# not the queue a near-saturated replica builds in 4 s (which the forward's time decides).
LIGHT_STEP_FRACTION = 0.85


def light_steps(report: CapacityReport) -> list[tuple[int, object]]:
    """(index, step) of the probe's open-loop steps below LIGHT_STEP_FRACTION of its saturation that are
    usable (every request answered, at least 20)."""
    limit = LIGHT_STEP_FRACTION * report.saturation_rps
    return [(k, s) for k, s in enumerate(report.steps)
            if s.requests >= 20 and s.failed == 0 and 0 < s.offered_rps <= limit and math.isfinite(s.mean_ms)]


def replay_step(profile: Profile, report: CapacityReport, indexed_step: tuple[int, object]) -> dict:
    """One of the probe's open-loop steps replayed, with the probe's own arrivals, through one simulated replica
    (idle at the start, as each step finds the service): its p50, p95 and mean in ms, ranked as the probe
    ranks them."""
    from sim.replica import Replica   # sim.replica imports this module

    k, step = indexed_step
    seconds = step.requests / step.offered_rps
    offsets = np.sort(np.random.default_rng(PROBE_SEED + k).uniform(0.0, seconds, step.requests))

    class _Sink:
        latency_s = np.full(step.requests, np.nan)

        def record(self, ids, codes, latency_s, replica_id):
            self.latency_s[ids] = latency_s

    sink = _Sink()
    replica = Replica(0, profile, 0.0, sink)
    replica.add_arrivals(offsets, np.arange(step.requests, dtype=np.int64))
    replica.drain()
    latency_ms = sink.latency_s * 1000.0
    return {"offered_rps": step.offered_rps, "p50_ms": float(np.percentile(latency_ms, 50, method="higher")),
            "p95_ms": float(np.percentile(latency_ms, 95, method="higher")), "mean_ms": float(latency_ms.mean())}


def load_profile(path: str | Path) -> Profile:
    """A profile from any of the three kinds of file; ProfileError says what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise ProfileError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a JSON object")
    try:
        if data.get("format") == PROFILE_FORMAT:
            known = {f.name for f in fields(Profile)}
            unknown = sorted(set(data) - known - {"format", "saturation_rps", "unloaded_ms"})
            if unknown:
                raise ProfileError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
            values = {k: v for k, v in data.items() if k in known}
            for k, v in values.items():
                if k != "source" and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise ProfileError(f"{path}: {k}={v!r} must be a number")
            return replace(Profile(), **{"source": str(path), **values}).validate()
        if isinstance(data.get("report"), dict):
            report = CapacityReport.from_dict(data["report"])
            return from_capacity_report(report, f"{path} (local calibration of {data.get('measured_at', '?')})")
        if "saturation_rps" in data and "steps" in data:
            return from_capacity_report(CapacityReport.from_dict(data), f"{path} (capacity probe)")
    except ProfileError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ProfileError(f"{path}: not a usable profile ({type(exc).__name__}: {exc})") from None
    raise ProfileError(f"{path}: neither a sim profile ({{\"format\": \"{PROFILE_FORMAT}\", ...}}), a capacity "
                       "probe's --json output nor a local calibration cache file")

