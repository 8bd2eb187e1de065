"""What a run's Server-Timing says about its forwards: the figures sim/cluster.py's shared-core model and
LOCAL_SHARED_CORE_SLOWDOWN (inputs.py) are calibrated on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadtester.records import read_requests_csv
from sim.batch_regroup import regroup_batches
from sim.batch_time import BatchTime
from sim.calibration.runs import CalibrationError, RealRun
from sim.profile import default_profile


def measure_forwards(requests_csv: Path, events: list[dict], startup_s: float, max_workers: float) -> dict:
    """What the run's Server-Timing says about the forwards. The requests are grouped back into batches
    (sim/batch_regroup.py), each a forward of [first answer - model, first answer]. `one_worker_line_ms` is
    fitted to the median forward per batch size of the batches no other forward overlapped (outside
    start-ups); `overlap_slowdown` is k in forward = line x (1 + k x the share of it that another worker's
    forwards overlapped), outside start-ups, in runs that had two workers; `startup_ratio` is the forwards'
    time over the line while a scale-up's worker started (TTIN + 0.3 s .. TTIN + the measured start-up)."""
    table = read_requests_csv(requests_csv)
    ok = np.isfinite(table.server_model_ms) & (table.kind == "ok")
    done = (table.sent_s + table.latency_ms / 1000.0)[ok]
    batches = regroup_batches(table.server_model_ms[ok], done)
    end = batches.earliest(done)
    start = end - batches.forward / 1000.0
    by_start = np.argsort(start)
    start, end, forward_ms, sizes = start[by_start], end[by_start], batches.forward[by_start], batches.sizes[by_start]
    overlap = np.zeros(len(start))
    for i in range(len(start)):
        lo, hi = max(0, i - 32), min(len(start), i + 33)
        shared = np.clip(np.minimum(end[i], end[lo:hi]) - np.maximum(start[i], start[lo:hi]), 0.0, None)
        shared[i - lo] = 0.0
        overlap[i] = min(float(shared.sum()) / max(end[i] - start[i], 1e-9), 1.0)
    ups = [float(e["t_s"]) for e in events if e.get("direction") == "up"]
    starting = np.zeros(len(start), dtype=bool)
    near_start = np.zeros(len(start), dtype=bool)
    for t in ups:
        starting |= (end >= t + 0.3) & (end < t + startup_s)
        near_start |= (end >= t) & (end < t + 2 * startup_s)
    alone = (overlap < 0.01) & ~near_start
    medians = {int(b): (float(np.median(forward_ms[alone & (sizes == b)])), int((alone & (sizes == b)).sum()))
               for b in np.unique(sizes) if (alone & (sizes == b)).sum() >= 3}
    b_, m_ = np.array(list(medians), dtype=float), np.array([v[0] for v in medians.values()])
    w = np.sqrt([v[1] for v in medians.values()])
    a, b = np.linalg.lstsq(np.vstack([w, w * b_]).T, w * m_, rcond=None)[0]
    line = BatchTime(float(a), float(b))
    ratio = forward_ms / line.forward_ms(sizes)
    use = ~near_start & (overlap > 0)
    k = float(np.sum(overlap[use] * (ratio[use] - 1)) / np.sum(overlap[use] ** 2)) \
        if max_workers >= 2 and use.sum() >= 30 else None
    return {"batches": int(len(sizes)), "images": int(sizes.sum()),
            "one_worker_line_ms": [round(line.intercept_ms, 2), round(line.per_image_ms, 2)],
            "median_alone_by_size_ms": {str(k_): round(v[0], 1) for k_, v in medians.items()},
            "overlapped_batches": int(use.sum()) if k is not None else 0,
            "overlap_slowdown": None if k is None else round(k, 3),
            "startup_batches": int(starting.sum()),
            "startup_ratio": round(float(forward_ms[starting].sum() / line.forward_ms(sizes[starting]).sum()), 3)
            if starting.any() else None}


def run_forwards(run: RealRun) -> dict | None:
    """The run's measured forwards: recorded in a reduced copy, else measured from its loadtest/requests.csv."""
    if run.record.forwards is not None:
        return run.record.forwards
    csv = run.path.parent / "loadtest" / "requests.csv"
    if not csv.is_file():
        return None
    workers = [v for _, v in run.record.replicas.get("workers", [])] or [1.0]
    try:
        # A sizing without a measured start-up: the default profile's worker start.
        startup_s = float(run.record.sizing.get("startup_s") or default_profile().startup_s)
        return measure_forwards(csv, run.record.events, startup_s, max(workers))
    except (OSError, ValueError, KeyError, np.linalg.LinAlgError) as exc:
        raise CalibrationError(f"{csv}: cannot measure the forwards from its Server-Timing ({exc})") from None
