"""Where a Profile comes from: the loaders of the three kinds of file, and the fit of a profile to a capacity
probe's measurement (the overhead is fitted by replaying the probe's own open-loop steps through a simulated
replica, which is why this lives apart from sim/profile.py: the replica itself runs on a Profile). What each
field means and what it is calibrated from is in sim/profile.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from inference.config import ServiceConfig
from loadtester.capacity_report import CapacityReport
from planning.sizing import derive
from sim.profile import DEFAULT_OVERHEAD_MS, DEFAULT_PREPROCESS_MS, PROFILE_FORMAT, Profile, ProfileError
from sim.replica import Replica


def from_capacity_report(report: CapacityReport, source: str, preprocess_ms: float = DEFAULT_PREPROCESS_MS,
                         overhead_ms: float = DEFAULT_OVERHEAD_MS, fit_overhead: bool = True) -> Profile:
    """A profile fitted to a probe's measurement of one deployment (divided by its replicas). With
    `fit_overhead`, the overhead then absorbs the mean gap between the probe's open-loop steps below the knee
    and the same steps replayed through the fitted replica (sim/profile.py's docstring says why)."""
    info = report.info or {}
    saturation = report.saturation_rps / report.replicas
    batch = int(report.max_batch_size or info.get("max_batch_size") or Profile.max_batch_size)
    full_ms = report.model_ms_at_saturation or batch * 1000.0 / saturation
    delay_ms = float(info.get("max_batch_delay_ms", Profile.max_batch_delay_ms))
    one_ms = max(report.unloaded_p50_ms - preprocess_ms - overhead_ms - delay_ms, 0.1)
    slope = (full_ms - one_ms) / (batch - 1) if batch > 1 else full_ms
    if slope <= 0:  # a single image as slow as a full batch: only the batch's time is known
        slope, one_ms = full_ms / batch, full_ms / batch
    sizing = derive(report, quick=False, max_replicas=1)
    profile = Profile(
        source=source, model_intercept_ms=round(one_ms - slope, 4), model_per_image_ms=round(slope, 4),
        preprocess_ms=preprocess_ms, overhead_ms=overhead_ms, max_batch_size=batch,
        max_batch_delay_ms=delay_ms,
        queue_limit=int(info.get("max_queue") or replace(ServiceConfig(), max_batch_size=batch).queue_limit),
        # A service whose /info has no wait budget admitted by count alone.
        queue_wait_ms=float(info.get("max_queue_wait_ms", 0.0)),
        request_timeout_s=float(info.get("request_timeout_s", Profile.request_timeout_s)),
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
