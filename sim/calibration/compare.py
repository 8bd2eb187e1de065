"""Every run of a comparison against its simulation: the document `python -m sim.calibrate --json` writes.

The real repeats of a policy share one simulation of their common inputs (inputs.inputs_key).
"""

from __future__ import annotations

from pathlib import Path

from loadtester.capacity_report import CapacityReport
from sim.calibration.agreement import GOALS, agreement, policy_rows
from sim.calibration.forwards import run_forwards
from sim.calibration.inputs import (LOCAL_REMOVAL_LAG_S, LOCAL_ROUTING, LOCAL_SHARED_CORE_SLOWDOWN, inputs_key,
                                    run_inputs)
from sim.calibration.runs import RealRun, find_runs, load_run, read_json
from sim.profile import Profile
from sim.profile_sources import light_steps, replay_step
from sim.run import RunResult, run_policy


def probe_replay(profile: Profile, run: RealRun) -> list[dict]:
    """The calibration's open-loop steps replayed through the fitted replica, against what the probe measured."""
    if run.calibration is not None:
        data = read_json(run.calibration, "the calibration")
        report = CapacityReport.from_dict(data.get("report", data))
    else:
        report = CapacityReport.from_dict(run.record.sizing["probe"])
    light = {k for k, _ in light_steps(report)}
    out = []
    for k, step in enumerate(report.steps):
        if step.requests < 1 or step.offered_rps <= 0:
            continue
        sim = replay_step(profile, report, (k, step))
        out.append({"offered_rps": step.offered_rps, "fitted_on": k in light,
                    "p50_ms": [step.p50_ms, round(sim["p50_ms"], 1)], "p95_ms": [step.p95_ms, round(sim["p95_ms"], 1)],
                    "mean_ms": [step.mean_ms, round(sim["mean_ms"], 1)]})
    return out


def calibrate(run_dir: Path, shared_core_slowdown: float = LOCAL_SHARED_CORE_SLOWDOWN, seed: int = 0) -> dict:
    """Every run of run_dir against its simulation: the document --json writes."""
    run_dir = Path(run_dir)
    runs = sorted((load_run(p, run_dir) for p in find_runs(run_dir)),
                  key=lambda r: (float(r.record.start_unix_s or 0.0), r.label))
    cache: dict[str, tuple[RunResult, float, Profile]] = {}
    rows = []
    for run in runs:
        key = inputs_key(run)
        if key not in cache:
            schedule, settings = run_inputs(run, shared_core_slowdown, seed)
            cache[key] = (run_policy(run.name, schedule, settings), schedule.duration_s, settings.profile)
        result, duration_s, profile = cache[key]
        row = agreement(run, result, duration_s)
        row["simulation"] = list(cache).index(key)
        rows.append(row)
    profiles = {}
    for run in runs:
        profile = cache[inputs_key(run)][2]
        profiles.setdefault(profile.source, {"profile": profile.as_dict(), "probe_replay": probe_replay(profile, run)})
    first = runs[0]
    return {
        "run_dir": str(run_dir), "goals": GOALS,
        "inputs": {"trace": str(first.trace), "loadtest": first.loadtest, "scrape_interval_s": first.scrape_interval_s,
                   "shared_core_slowdown": shared_core_slowdown, "removal_lag_s": LOCAL_REMOVAL_LAG_S,
                   "routing": LOCAL_ROUTING, "sim_seed": seed, "simulations": len(cache)},
        "profiles": list(profiles.values()),
        "measured_forwards": {r.label: f for r in runs for f in (run_forwards(r),) if f is not None},
        "runs": rows, "policies": policy_rows(rows),
    }
