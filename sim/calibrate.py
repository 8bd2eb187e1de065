"""`python -m sim.calibrate RUN_DIR [--json FILE]`: the simulator against a real `make compare`.

RUN_DIR is a real comparison (what `make compare` writes under reports/<UTC time>/ or --out: one
`<policy>-<n>/` per run, each with run.json, loadtest/summary.json and prometheus/prometheus.yml) or a
reduced copy of one (tests/fixtures/sim-calibration/, written by `--record OUT_DIR`). For every run the
simulator is given exactly what that run had:

- the arrivals: loadtester.schedule.build_schedule over the same trace, scale, seed and arrival mode (the load
  tester's own code; the request count must match the run's, or the inputs differ and it stops);
- the replica: the profile fitted to the calibration the run was sized from (sim/profile.py's loader on the
  cached probe JSON that sizing.source names, else the probe embedded in sizing), with the run's MAX_QUEUE
  (sizing.max_queue, which the local stack gives gunicorn) and its measured start-up (TTIN to the new
  worker's ready marker) and no pod overhead: the local stack adds a gunicorn worker, not a pod;
- the autoscaler: the environment it ran with (run.json autoscaler_env, less the variables that only say
  where Prometheus and gunicorn are: the simulator is both), through the same policy mapping as the run's
  name; the same MIN/MAX_REPLICAS; Prometheus scraping at the run's interval (1 s locally);
- the local stack's one machine: a removed worker leaves at once (gunicorn's TTOU: no endpoints to update),
  and the workers share the cores (sim/cluster.py's shared_core_slowdown, LOCAL_SHARED_CORE_SLOWDOWN below).

Then, per run and per policy (the real repeats of a policy against the one simulation of their common
inputs): replica-seconds (relative error), 10 s windows whose p95 met the SLO (real count, simulated count,
difference) and the p95 of every window (median over windows of |sim - real| / real), each against its goal
(GOALS). Prints a table; `--json FILE` writes it all. Bad input exits 2 with a message naming the problem.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np
import yaml

from autoscaler.config import ConfigError, load_config
from loadtester.capacity_report import CapacityReport
from loadtester.records import read_requests_csv
from loadtester.schedule import build_schedule
from loadtester.workload import WorkloadError, load_workload
from sim.cluster import ClusterSettings
from sim.profile import Profile, ProfileError
from sim.profiles import from_capacity_report, light_steps, load_profile, replay_step
from sim.run import PolicyError, RunResult, RunSettings, check_policy, policy_config, run_policy

PROG = "python -m sim.calibrate"
RUN_FILE = "run.json"
REDUCED_FORMAT = "sim-calibration-run"
# The goals: replica-seconds within 10%, windows in SLO within one window, median p95-per-window
# error under 25%.
GOALS = {"replica_seconds_error": 0.10, "windows_in_slo_difference": 1, "p95_median_error": 0.25}
# sim/cluster.py's shared_core_slowdown for the local stack: 1..2 gunicorn workers, the load tester and
# Prometheus on one 2-core machine. Measured from the Server-Timing of the recorded run
# (tests/fixtures/sim-calibration/: `forwards` in each run.json, measure_forwards below): a forward
# overlapped by the other worker's took 1 + k x the overlapped share longer, k = 0.17-0.27 in the four runs
# with two workers (mean 0.22); while a second worker started, the serving one's forwards took 1.15-1.44x
# their one-worker time (mean 1.24, 6 start-ups), as if that worker were one more busy forward.
LOCAL_SHARED_CORE_SLOWDOWN = 0.2
LOCAL_REMOVAL_LAG_S = 0.0
# Where the autoscaler finds Prometheus, gunicorn and its own /metrics: the simulator stands in for all three.
PLUMBING_ENV = ("SCALER", "GUNICORN_PIDFILE", "PROMETHEUS_URL", "METRICS_HOST", "METRICS_PORT")
WINDOW_FIELDS = ("start_s", "requests", "ok", "error_rate", "p50_ms", "p95_ms", "p99_ms", "meets_slo")
LOADTEST_FIELDS = ("trace", "arrivals", "seed", "scale", "speedup", "duration_s")


class CalibrationError(Exception):
    """Input that cannot be calibrated against; the message names the file and the problem."""


@dataclass(frozen=True)
class RealRun:
    label: str                  # the run's directory: static-min-1
    name: str                   # the policy as the comparison names it: static-min
    path: Path                  # its run.json
    data: dict                  # run.json
    loadtest: dict              # LOADTEST_FIELDS as the load tester ran
    scrape_interval_s: float
    trace: Path
    calibration: Path | None    # the probe's cached JSON (None: the probe embedded in sizing)

    @property
    def windows(self) -> list[dict]:
        return self.data["windows"]


# --- reading runs --------------------------------------------------------------------------------------------
def find_runs(run_dir: Path) -> list[Path]:
    """Every `<run>/run.json` under run_dir (or run_dir's own run.json), in name order."""
    if not run_dir.is_dir():
        raise CalibrationError(f"{run_dir}: no such directory")
    if (run_dir / RUN_FILE).is_file():
        return [run_dir / RUN_FILE]
    runs = sorted(p for p in run_dir.glob(f"*/{RUN_FILE}") if p.is_file())
    if not runs:
        raise CalibrationError(f"{run_dir}: no <run>/{RUN_FILE} in it (expected what `make compare` writes "
                               "or a reduced copy written by --record)")
    return runs


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: {what} is not a JSON object")
    return data


def _need(data: dict, path: Path, *keys: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise CalibrationError(f"{path}: missing {', '.join(missing)}")


def load_run(path: Path, root: Path) -> RealRun:
    data = _read_json(path, "a run's figures")
    _need(data, path, "plan", "sizing", "autoscaler_env", "windows", "replica_seconds", "requests")
    plan, sizing = data["plan"], data["sizing"]
    if not isinstance(plan, dict) or not isinstance(sizing, dict) or not isinstance(data["autoscaler_env"], dict):
        raise CalibrationError(f"{path}: plan, sizing and autoscaler_env must be JSON objects")
    _need(plan, path, "name", "min_replicas", "max_replicas", "scale")
    if not isinstance(data["windows"], list) or not data["windows"] or not all(
            isinstance(w, dict) and {"start_s", "p95_ms", "meets_slo"} <= set(w) for w in data["windows"]):
        raise CalibrationError(f"{path}: windows must be a non-empty list of {{start_s, p95_ms, meets_slo, ...}}")
    if isinstance(data["replica_seconds"], bool) or not isinstance(data["replica_seconds"], (int, float)):
        raise CalibrationError(f"{path}: replica_seconds={data['replica_seconds']!r} must be a number")
    run_dir = path.parent
    loadtest = data.get("loadtest")
    if loadtest is None:
        summary = _read_json(run_dir / "loadtest" / "summary.json", "the load tester's summary")
        try:
            loadtest = {k: summary["run"]["parameters"][k] for k in LOADTEST_FIELDS}
        except (KeyError, TypeError) as exc:
            raise CalibrationError(f"{run_dir / 'loadtest' / 'summary.json'}: no run.parameters.{exc}") from None
    try:
        same_scale = abs(float(loadtest["scale"]) - float(plan["scale"])) <= 1e-9
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{path}: the load tester's parameters are not usable ({type(exc).__name__}: "
                               f"{exc})") from None
    if not same_scale:
        raise CalibrationError(f"{path}: the plan's scale {plan['scale']} is not the load tester's {loadtest['scale']}")
    scrape = data.get("scrape_interval_s")
    if scrape is None:
        scrape = _scrape_interval_s(run_dir / "prometheus" / "prometheus.yml")
    trace = _trace_path(data, plan, loadtest, path, root)
    return RealRun(label=str(data.get("run_dir_name") or run_dir.name), name=str(plan["name"]), path=path, data=data,
                   loadtest=loadtest, scrape_interval_s=float(scrape), trace=trace,
                   calibration=_calibration_path(data, sizing, path, root))


def _scrape_interval_s(config: Path) -> float:
    try:
        text = str((yaml.safe_load(config.read_text()) or {}).get("global", {}).get("scrape_interval", "1m"))
    except FileNotFoundError:
        raise CalibrationError(f"{config}: no such file (the run's Prometheus config, for its scrape "
                               "interval)") from None
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise CalibrationError(f"{config}: cannot read the scrape interval ({exc})") from None
    m = re.fullmatch(r"([0-9.]+)(ms|s|m)", text.strip())
    if not m:
        raise CalibrationError(f"{config}: scrape_interval {text!r} is not a duration like 1s")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _trace_path(data: dict, plan: dict, loadtest: dict, path: Path, root: Path) -> Path:
    trace = root / data["trace_file"] if data.get("trace_file") else Path(str(plan.get("trace") or loadtest["trace"]))
    if not trace.is_file():
        raise CalibrationError(f"{path}: its trace {trace} is not a file")
    want = data.get("trace_sha256")
    if want and _sha256(trace) != want:
        raise CalibrationError(f"{trace}: not the trace the run replayed (sha256 {_sha256(trace)[:12]}..., "
                               f"the run's {want[:12]}...)")
    return trace


def _calibration_path(data: dict, sizing: dict, path: Path, root: Path) -> Path | None:
    if data.get("calibration_file"):
        named = root / data["calibration_file"]
        if not named.is_file():
            raise CalibrationError(f"{path}: its calibration {named} is not a file")
        return named
    m = re.search(r"([^\s;()]+\.json)", str(sizing.get("source", "")))
    for candidate in ([Path(m.group(1)), root / Path(m.group(1)).name] if m else []):
        if candidate.is_file():
            return candidate
    if isinstance(sizing.get("probe"), dict):
        return None
    raise CalibrationError(f"{path}: the calibration it was sized from is gone (sizing.source: "
                           f"{sizing.get('source')!r}) and sizing has no probe")


# --- the simulation of one run ----------------------------------------------------------------------------------
def run_profile(run: RealRun) -> Profile:
    """The replica the run had: the probe's profile, the run's MAX_QUEUE and start-up, no pod overhead."""
    sizing = run.data["sizing"]
    try:
        if run.calibration is not None:
            profile = load_profile(run.calibration)
        else:
            profile = from_capacity_report(CapacityReport.from_dict(sizing["probe"]), f"{run.path}: sizing.probe")
        return replace(
            profile, pod_overhead_s=0.0,
            queue_limit=int(sizing.get("max_queue") or profile.queue_limit),
            startup_s=float(sizing.get("startup_s") or profile.startup_s),
            slo_ms=float(sizing.get("slo_ms") or profile.slo_ms),
            capacity_within_slo_rps=float(sizing.get("capacity_within_slo_rps") or profile.capacity_within_slo_rps),
            target_inflight_per_replica=float(sizing.get("target_inflight_per_replica")
                                              or profile.target_inflight_per_replica)).validate()
    except ProfileError as exc:
        raise CalibrationError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{run.path}: sizing is not usable ({type(exc).__name__}: {exc})") from None


def run_inputs(run: RealRun, shared_core_slowdown: float = LOCAL_SHARED_CORE_SLOWDOWN, seed: int = 0):
    """(schedule, RunSettings) of the run, checked against what the run recorded."""
    plan, env = run.data["plan"], run.data["autoscaler_env"]
    try:
        check_policy(run.name)
    except PolicyError as exc:
        raise CalibrationError(f"{run.path}: plan.name: {exc}") from None
    try:
        base = load_config([], {k: str(v) for k, v in env.items() if k not in PLUMBING_ENV})
        config = policy_config(run.name, base)
    except ConfigError as exc:
        raise CalibrationError(f"{run.path}: autoscaler_env: {exc}") from None
    try:
        bounds = (int(plan["min_replicas"]), int(plan["max_replicas"]), int(plan.get("initial_replicas") or 0))
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{run.path}: plan: replica counts must be integers ({exc})") from None
    if (config.min_replicas, config.max_replicas) != bounds[:2]:
        raise CalibrationError(f"{run.path}: {run.name} in the simulator holds {config.min_replicas}.."
                               f"{config.max_replicas} replicas, the run's plan {plan['min_replicas']}.."
                               f"{plan['max_replicas']}")
    if bounds[2] and bounds[2] != config.min_replicas:
        raise CalibrationError(f"{run.path}: the run started with {plan['initial_replicas']} replicas; the "
                               f"simulator starts at MIN_REPLICAS ({config.min_replicas})")
    try:
        workload = load_workload(run.trace)
        lt = run.loadtest
        schedule = build_schedule(workload.rates_rps, seed=int(lt["seed"]), arrivals=str(lt["arrivals"]),
                                  scale=float(lt["scale"]), speedup=float(lt.get("speedup") or 1.0),
                                  duration_s=None if lt.get("duration_s") is None else float(lt["duration_s"]))
    except WorkloadError as exc:
        raise CalibrationError(f"{run.trace}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{run.path}: the load tester's parameters are not usable ({exc})") from None
    scheduled = run.data["requests"].get("scheduled") if isinstance(run.data["requests"], dict) else None
    if scheduled is not None and int(scheduled) != len(schedule):
        raise CalibrationError(f"{run.path}: the schedule rebuilt from {run.trace.name} (scale {lt['scale']}, seed "
                               f"{lt['seed']}, {lt['arrivals']}) has {len(schedule)} requests, the run scheduled "
                               f"{scheduled}: not the same arrivals")
    settings = RunSettings(profile=run_profile(run), config=config, scrape_interval_s=run.scrape_interval_s,
                           cluster=ClusterSettings(routing="random", removal_lag_s=LOCAL_REMOVAL_LAG_S,
                                                   shared_core_slowdown=shared_core_slowdown), seed=seed)
    return schedule, settings


def _inputs_key(run: RealRun) -> str:
    env = {k: v for k, v in run.data["autoscaler_env"].items() if k not in PLUMBING_ENV}
    return json.dumps([run.name, env, run.loadtest, run.scrape_interval_s, str(run.trace), str(run.calibration),
                       run.data["plan"].get("min_replicas"), run.data["plan"].get("max_replicas"),
                       {k: run.data["sizing"].get(k) for k in ("max_queue", "startup_s", "slo_ms")}], sort_keys=True)


# --- agreement --------------------------------------------------------------------------------------------------
def integrate_steps(points: Sequence[Sequence[float]], start_s: float, end_s: float) -> float:
    """The integral over [start_s, end_s] of a step function given as [t, value] points."""
    total = 0.0
    for (t, v), (t_next, _) in zip(points, list(points[1:]) + [[end_s, 0.0]]):
        lo, hi = max(t, start_s), min(t_next, end_s)
        if hi > lo:
            total += v * (hi - lo)
    return total


def agreement(run: RealRun, result: RunResult, duration_s: float) -> dict:
    """One real run against its simulation."""
    real_rs = float(run.data["replica_seconds"])
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
    workers = (run.data.get("replicas") or {}).get("workers") or []
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
        "scale_events": {"real": [[e.get("t_s"), e.get("direction")] for e in run.data.get("events", [])],
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


def probe_replay(profile: Profile, run: RealRun) -> list[dict]:
    """The calibration's open-loop steps replayed through the fitted replica, against what the probe measured."""
    if run.calibration is not None:
        data = _read_json(run.calibration, "the calibration")
        report = CapacityReport.from_dict(data.get("report", data))
    else:
        report = CapacityReport.from_dict(run.data["sizing"]["probe"])
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
                  key=lambda r: (float(r.data.get("start_unix_s") or 0.0), r.label))
    cache: dict[str, tuple[RunResult, float, Profile]] = {}
    rows = []
    for run in runs:
        key = _inputs_key(run)
        if key not in cache:
            schedule, settings = run_inputs(run, shared_core_slowdown, seed)
            cache[key] = (run_policy(run.name, schedule, settings), schedule.duration_s, settings.profile)
        result, duration_s, profile = cache[key]
        row = agreement(run, result, duration_s)
        row["simulation"] = list(cache).index(key)
        rows.append(row)
    profiles = {}
    for run in runs:
        profile = cache[_inputs_key(run)][2]
        profiles.setdefault(profile.source, {"profile": profile.as_dict(), "probe_replay": probe_replay(profile, run)})
    first = runs[0]
    return {
        "run_dir": str(run_dir), "goals": GOALS,
        "inputs": {"trace": str(first.trace), "loadtest": first.loadtest, "scrape_interval_s": first.scrape_interval_s,
                   "shared_core_slowdown": shared_core_slowdown, "removal_lag_s": LOCAL_REMOVAL_LAG_S,
                   "routing": "random", "sim_seed": seed, "simulations": len(cache)},
        "profiles": list(profiles.values()),
        "measured_forwards": {r.label: f for r in runs for f in (run_forwards(r),) if f is not None},
        "runs": rows, "policies": policy_rows(rows),
    }


# --- output -------------------------------------------------------------------------------------------------------
def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def table_lines(doc: dict) -> list[str]:
    lines = ["| policy | run | replica-s real | sim | error | ok | windows in SLO real | sim | diff | ok "
             "| p95/window median error | ok | p95 bias: all, 1 worker, 2 workers |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---|---|"]

    def bias(p95):
        parts = [p95.get("bias")] + [p95["by_workers"].get(n, {}).get("bias") for n in ("1", "2")]
        return ", ".join("-" if b is None else f"{b:+.0%}" for b in parts)

    def line(name, label, row):
        rs, win, p95, g = row["replica_seconds"], row["windows_in_slo"], row["p95_per_window"], row["goals"]
        err = "n/a" if rs["error"] is None else f"{rs['error']:+.1%}"
        med = "n/a" if p95["median_error"] is None else f"{p95['median_error']:.1%}"
        lines.append(f"| {name} | {label} | {rs['real']:g} | {rs['sim']:g} | {err} | {_ok(g['replica_seconds'])} "
                     f"| {win['real']:g} | {win['sim']:g} | {win['difference']:+g} | {_ok(g['windows_in_slo'])} "
                     f"| {med} | {_ok(g['p95_per_window'])} | {bias(p95)} |")

    for name, summary in doc["policies"].items():
        for row in doc["runs"]:
            if row["policy"] == name:
                line(name, row["run"], row)
        line(f"**{name}**", f"mean of {len(summary['runs'])}", summary)
    return lines


def report_lines(doc: dict) -> list[str]:
    inputs = doc["inputs"]
    lines = [f"calibration: {doc['run_dir']}: {len(doc['runs'])} runs, {inputs['simulations']} simulations; trace "
             f"{Path(inputs['trace']).name} x{inputs['loadtest']['scale']:g}, seed {inputs['loadtest']['seed']} "
             f"({inputs['loadtest']['arrivals']}), scrape every {inputs['scrape_interval_s']:g} s, shared-core "
             f"slowdown {inputs['shared_core_slowdown']:g}"]
    for p in doc["profiles"]:
        prof = p["profile"]
        lines.append(f"profile: {prof['source']}: model(b) = {prof['model_intercept_ms']:g} + "
                     f"{prof['model_per_image_ms']:g} x b ms ({prof['saturation_rps']:.1f} req/s in full batches), "
                     f"overhead {prof['overhead_ms']:g} ms, unloaded {prof['unloaded_ms']:.1f} ms, queue "
                     f"{prof['queue_limit']}, start-up {prof['startup_s']:g} s")
        steps = ", ".join(f"{s['offered_rps']:g}: {s['p95_ms'][0]:.0f}/{s['p95_ms'][1]:.0f}" for s in p["probe_replay"])
        lines.append(f"  the probe's open-loop steps replayed (req/s: measured/simulated p95 ms): {steps}")
    measured = doc.get("measured_forwards") or {}
    if measured:
        lines.append("measured in the runs' Server-Timing (batches regrouped): one worker's forward (ms) "
                     + ", ".join(f"{run} {m['one_worker_line_ms'][0]:g} + {m['one_worker_line_ms'][1]:g} x b"
                                 for run, m in measured.items()))
        k = [f"{run} {m['overlap_slowdown']:g}" for run, m in measured.items() if m.get("overlap_slowdown") is not None]
        up = [f"{run} x{m['startup_ratio']:g}" for run, m in measured.items() if m.get("startup_ratio") is not None]
        if k or up:
            lines.append(f"  forwards x(1 + k x overlapped share): k = {', '.join(k) or 'n/a'}; while a worker "
                         f"started: {', '.join(up) or 'n/a'} (the model: k = {doc['inputs']['shared_core_slowdown']:g} "
                         "for both, a starting worker counting as one busy forward)")
    lines += ["", *table_lines(doc), ""]
    g = GOALS
    missed = [name for name, s in doc["policies"].items() if not all(s["goals"].values())]
    lines.append(f"goals per policy (the repeats' mean): replica-seconds within {g['replica_seconds_error']:.0%}, "
                 f"windows in SLO within {g['windows_in_slo_difference']}, median p95-per-window error under "
                 f"{g['p95_median_error']:.0%}: " + ("all met" if not missed else f"MISSED by {', '.join(missed)}"))
    return lines


# --- recording a reduced copy ---------------------------------------------------------------------------------------
def measure_forwards(requests_csv: Path, events: list[dict], startup_s: float, max_workers: float) -> dict:
    """What the run's Server-Timing says about the forwards. The requests of one batch share its `model` time to
    the microsecond and finish together, so they are grouped back into batches, each a forward of
    [first answer - model, first answer]. `one_worker_line_ms` is fitted to the median forward per batch size
    of the batches no other forward overlapped (outside start-ups); `overlap_slowdown` is k in
    forward = line x (1 + k x the share of it that another worker's forwards overlapped), outside start-ups,
    in runs that had two workers; `startup_ratio` is the forwards' time over the line while a scale-up's
    worker started (TTIN + 0.3 s .. TTIN + the measured start-up)."""
    table = read_requests_csv(requests_csv)
    ok = np.isfinite(table.server_model_ms) & (table.kind == "ok")
    model = table.server_model_ms[ok]
    done = (table.sent_s + table.latency_ms / 1000.0)[ok]
    order = np.lexsort((done, model))
    model, done = model[order], done[order]
    new = np.ones(len(model), dtype=bool)
    new[1:] = (model[1:] != model[:-1]) | (np.diff(done) > 0.02)
    first = np.flatnonzero(new)
    sizes = np.diff(np.append(first, len(model)))
    forward_ms = model[first]
    end = np.minimum.reduceat(done, first)
    start = end - forward_ms / 1000.0
    by_start = np.argsort(start)
    start, end, forward_ms, sizes = start[by_start], end[by_start], forward_ms[by_start], sizes[by_start]
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
    ratio = forward_ms / (a + b * sizes)
    use = ~near_start & (overlap > 0)
    k = float(np.sum(overlap[use] * (ratio[use] - 1)) / np.sum(overlap[use] ** 2)) \
        if max_workers >= 2 and use.sum() >= 30 else None
    return {"batches": int(len(sizes)), "images": int(sizes.sum()),
            "one_worker_line_ms": [round(float(a), 2), round(float(b), 2)],
            "median_alone_by_size_ms": {str(k_): round(v[0], 1) for k_, v in medians.items()},
            "overlapped_batches": int(use.sum()) if k is not None else 0,
            "overlap_slowdown": None if k is None else round(k, 3),
            "startup_batches": int(starting.sum()),
            "startup_ratio": round(float(forward_ms[starting].sum() / (a + b * sizes[starting]).sum()), 3)
            if starting.any() else None}


def run_forwards(run: RealRun) -> dict | None:
    """The run's measured forwards: recorded in a reduced copy, else measured from its loadtest/requests.csv."""
    if isinstance(run.data.get("forwards"), dict):
        return run.data["forwards"]
    csv = run.path.parent / "loadtest" / "requests.csv"
    if not csv.is_file():
        return None
    workers = [v for _, v in (run.data.get("replicas") or {}).get("workers", [])] or [1.0]
    try:
        return measure_forwards(csv, run.data.get("events", []), float(run.data["sizing"].get("startup_s") or 2.6),
                                max(workers))
    except (OSError, ValueError, KeyError, np.linalg.LinAlgError) as exc:
        raise CalibrationError(f"{csv}: cannot measure the forwards from its Server-Timing ({exc})") from None


def record(run_dir: Path, out_dir: Path) -> list[Path]:
    """A reduced copy of run_dir under out_dir (what --record writes): per run the figures the calibration
    reads, inline (load tester parameters, scrape interval, the measured forwards), with the trace and the
    calibration copied next to them. Returns the files written."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    runs = [load_run(p, run_dir) for p in find_runs(run_dir)]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    copies: dict[Path, str] = {}
    for source in {r.trace for r in runs} | {r.calibration for r in runs if r.calibration is not None}:
        name = source.name
        if out_dir / name != source:
            shutil.copyfile(source, out_dir / name)
        copies[source] = name
        written.append(out_dir / name)
    for run in runs:
        d = run.data
        sizing = {k: v for k, v in d["sizing"].items() if k != "probe" or run.calibration is None}
        keep = {
            "format": REDUCED_FORMAT, "name": run.name, "run_dir_name": run.label,
            "recorded_from": d.get("recorded_from") or str(run.path.parent),
            "plan": d["plan"], "sizing": sizing, "autoscaler_env": d["autoscaler_env"],
            "loadtest": {k: run.loadtest.get(k) for k in LOADTEST_FIELDS},
            "scrape_interval_s": run.scrape_interval_s,
            "trace_file": copies[run.trace], "trace_sha256": _sha256(run.trace),
            "calibration_file": copies.get(run.calibration) if run.calibration is not None else None,
            "duration_s": d.get("duration_s"), "start_unix_s": d.get("start_unix_s"),
            "requests": d["requests"], "latency_ms": d.get("latency_ms"), "slo": d.get("slo"),
            "windows": [{k: w.get(k) for k in WINDOW_FIELDS} for w in d["windows"]],
            "replica_seconds": d["replica_seconds"], "replica_seconds_source": d.get("replica_seconds_source"),
            "replicas": {"workers": (d.get("replicas") or {}).get("workers", [])},
            "events": d.get("events", []),
        }
        forwards = run_forwards(run)
        if forwards is not None:
            keep["forwards"] = forwards
        path = out_dir / run.label / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keep, indent=1) + "\n")
        written.append(path)
    return written


# --- the command ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=(
        "Simulate exactly what a real `make compare` ran (same trace, seed, settings and calibration) and report "
        "the simulator's error per policy on replica-seconds, windows within the SLO and p95 per window."))
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a `make compare` output directory or a reduced copy of one (--record)")
    p.add_argument("--json", metavar="FILE", default=None, help="write the whole comparison there")
    p.add_argument("--record", metavar="OUT_DIR", default=None,
                   help="write a reduced copy of RUN_DIR (small enough to ship as test data) to OUT_DIR, then "
                        "calibrate against that copy")
    p.add_argument("--shared-core-slowdown", type=float, default=LOCAL_SHARED_CORE_SLOWDOWN, metavar="K",
                   help="workers sharing the machine's cores (sim/cluster.py; default %(default)s, the local "
                        "stack's measured figure; 0: every worker on a core of its own)")
    p.add_argument("--sim-seed", type=int, default=0, help="the simulator's routing and start-up draws (default 0)")
    return p


def main(argv: Sequence[str] | None = None, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if not (math.isfinite(args.shared_core_slowdown) and args.shared_core_slowdown >= 0):
            raise CalibrationError(f"--shared-core-slowdown={args.shared_core_slowdown:g} must be >= 0")
        run_dir = Path(args.run_dir)
        if args.record:
            written = record(run_dir, Path(args.record))
            size = sum(p.stat().st_size for p in written)
            print(f"{PROG}: wrote {len(written)} files ({size / 1024:.0f} KiB) in {args.record}", file=stdout)
            run_dir = Path(args.record)
        doc = calibrate(run_dir, args.shared_core_slowdown, args.sim_seed)
    except CalibrationError as exc:
        print(f"{PROG}: error: {exc}", file=stderr)
        return 2
    for line in report_lines(doc):
        print(line, file=stdout)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        except OSError as exc:
            print(f"{PROG}: error: --json {args.json}: {exc}", file=stderr)
            return 2
        print(f"{PROG}: wrote {args.json}", file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
