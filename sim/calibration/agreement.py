"""One real run, and each policy's repeats, against the simulation: replica-seconds (relative error), 10 s
windows whose p95 met the SLO (real count, simulated count, difference) and the p95 of every window (median
over windows of |sim - real| / real), each against its goal (GOALS).

Replica-seconds on both sides are comparison/events.py's integral, the one the comparisons report.
"""

from __future__ import annotations

import numpy as np

from comparison.events import integrate_steps
from sim.calibration.runs import RealRun
from sim.run import RunResult

# The goals: replica-seconds within 10%, windows in SLO within one window, median p95-per-window
# error under 25%.
GOALS = {"replica_seconds_error": 0.10, "windows_in_slo_difference": 1, "p95_median_error": 0.25}


def agreement(run: RealRun, result: RunResult, duration_s: float) -> dict:
    """One real run against its simulation."""
    record = run.record
    real_rs = float(record.replica_seconds)
    sim_rs = integrate_steps(result.ready_timeline, 0.0, duration_s)
    real_w = {round(float(w["start_s"]), 3): w for w in run.windows}
    sim_w = {round(float(w["start_s"]), 3): w for w in result.windows}
    starts = sorted(set(real_w) & set(sim_w))
    errors, pairs = [], []
    for s in starts:
        r, m = real_w[s].get("p95_ms"), sim_w[s].get("p95_ms")
        pairs.append([s, r, m])
        if r is not None and m is not None and r > 0:
            errors.append(abs(m - r) / r)
    real_in = sum(1 for w in run.windows if w.get("meets_slo"))
    sim_in = sum(1 for w in result.windows if w.get("meets_slo"))
    workers = record.replicas.get("workers") or []
    width = float(run.windows[1]["start_s"]) - float(run.windows[0]["start_s"]) if len(run.windows) > 1 else 10.0
    for pair in pairs:   # the real run's mean ready workers over the window (its Prometheus series)
        pair.append(round(integrate_steps(workers, pair[0], pair[0] + width) / width, 2) if workers else None)
    row = {
        "run": run.label, "policy": run.name,
        "replica_seconds": {"real": round(real_rs, 1), "sim": round(sim_rs, 1),
                            "error": round((sim_rs - real_rs) / real_rs, 4) if real_rs > 0 else None},
        "windows_in_slo": {"real": real_in, "sim": sim_in, "difference": sim_in - real_in,
                           "windows": {"real": len(run.windows), "sim": len(result.windows)}},
        "p95_per_window": {"median_error": round(float(np.median(errors)), 4) if errors else None,
                           "windows_compared": len(errors), **_by_workers(pairs),
                           "start_s_real_sim_ms_workers": pairs},
        "scale_events": {"real": [[e.get("t_s"), e.get("direction")] for e in record.events],
                         "sim": [[e.get("t_s"), e.get("direction")] for e in result.events]},
    }
    row["goals"] = goals_met(row["replica_seconds"]["error"], row["windows_in_slo"]["difference"],
                             row["p95_per_window"]["median_error"])
    return row


def _by_workers(pairs: list[list]) -> dict:
    """The signed p95 errors' median (bias) over all windows, and median |error| and bias by how many workers
    the real run had in the window (its mean, rounded)."""
    signed = [((m - r) / r, w) for _, r, m, *rest in pairs for w in (rest[0] if rest else None,)
              if r is not None and m is not None and r > 0]
    out = {"bias": round(float(np.median([e for e, _ in signed])), 4) if signed else None, "by_workers": {}}
    for n in sorted({int(round(w)) for _, w in signed if w is not None}):
        mine = [e for e, w in signed if w is not None and int(round(w)) == n]
        out["by_workers"][str(n)] = {"windows": len(mine), "median_error": round(float(np.median(np.abs(mine))), 4),
                                     "bias": round(float(np.median(mine)), 4)}
    return out


def goals_met(rs_error: float | None, windows_difference: float, p95_error: float | None) -> dict:
    return {"replica_seconds": rs_error is not None and abs(rs_error) <= GOALS["replica_seconds_error"] + 1e-12,
            "windows_in_slo": abs(windows_difference) <= GOALS["windows_in_slo_difference"] + 1e-9,
            "p95_per_window": p95_error is not None and p95_error < GOALS["p95_median_error"]}


def policy_rows(rows: list[dict]) -> dict[str, dict]:
    """Per policy: the repeats' mean against the simulation; p95 errors pooled over every repeat's windows."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["policy"] for r in rows):
        mine = [r for r in rows if r["policy"] == name]
        real_rs = float(np.mean([r["replica_seconds"]["real"] for r in mine]))
        sim_rs = float(np.mean([r["replica_seconds"]["sim"] for r in mine]))
        real_in = float(np.mean([r["windows_in_slo"]["real"] for r in mine]))
        sim_in = float(np.mean([r["windows_in_slo"]["sim"] for r in mine]))
        pairs = [p for row in mine for p in row["p95_per_window"]["start_s_real_sim_ms_workers"]]
        errors = [abs(m - r) / r for _, r, m, *_ in pairs if r is not None and m is not None and r > 0]
        rs_error = (sim_rs - real_rs) / real_rs if real_rs > 0 else None
        p95 = float(np.median(errors)) if errors else None
        out[name] = {
            "runs": [r["run"] for r in mine],
            "replica_seconds": {"real": round(real_rs, 1), "sim": round(sim_rs, 1),
                                "error": None if rs_error is None else round(rs_error, 4),
                                "real_range": [min(r["replica_seconds"]["real"] for r in mine),
                                               max(r["replica_seconds"]["real"] for r in mine)]},
            "windows_in_slo": {"real": round(real_in, 2), "sim": round(sim_in, 2),
                               "difference": round(sim_in - real_in, 2),
                               "real_range": [min(r["windows_in_slo"]["real"] for r in mine),
                                              max(r["windows_in_slo"]["real"] for r in mine)]},
            "p95_per_window": {"median_error": None if p95 is None else round(p95, 4), "windows_compared": len(errors),
                               **_by_workers(pairs)},
            "goals": goals_met(rs_error, sim_in - real_in, p95),
        }
    return out
