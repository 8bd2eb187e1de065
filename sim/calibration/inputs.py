"""What the simulation of one real run is given: exactly what that run had.

- the arrivals: loadtester.schedule.build_schedule over the same trace, scale, seed and arrival mode (the
  load tester's own code; the request count must match the run's, or the inputs differ and it stops);
- the replica: the profile fitted to the calibration the run was sized from, with the run's MAX_QUEUE
  (sizing.max_queue, which the local stack gives gunicorn) and its measured start-up (TTIN to the new
  worker's ready marker) and no pod overhead: the local stack adds a gunicorn worker, not a pod;
- the autoscaler: the environment it ran with, less PLUMBING_ENV, through the same mapping of the run's
  name (planning/runs.py); the same MIN/MAX_REPLICAS; Prometheus scraping at the run's interval;
- the local stack's one machine: a removed worker leaves at once (gunicorn's TTOU: no endpoints to update),
  and the workers share the cores (sim/cluster.py's shared_core_slowdown, LOCAL_SHARED_CORE_SLOWDOWN).
"""

from __future__ import annotations

import json
from dataclasses import replace

from autoscaler.config import ConfigError, load_config
from loadtester.capacity_report import CapacityReport
from loadtester.schedule import Schedule, build_schedule
from loadtester.workload import WorkloadError, load_workload
from planning.runs import RunNameError, check_run_name
from sim.calibration.runs import CalibrationError, RealRun
from sim.cluster import ClusterSettings
from sim.profile import Profile, ProfileError
from sim.profile_sources import from_capacity_report, load_profile
from sim.run import RunSettings, policy_config

# sim/cluster.py's shared_core_slowdown for the local stack: 1..2 gunicorn workers, the load tester and
# Prometheus on one 2-core machine. Measured from the Server-Timing of the recorded run
# (tests/fixtures/sim-calibration/: `forwards` in each run.json, forwards.py): a forward overlapped by the
# other worker's took 1 + k x the overlapped share longer, k = 0.17-0.27 in the four runs with two workers
# (mean 0.22); while a second worker started, the serving one's forwards took 1.15-1.44x their one-worker
# time (mean 1.24, 6 start-ups), as if that worker were one more busy forward.
LOCAL_SHARED_CORE_SLOWDOWN = 0.2
LOCAL_REMOVAL_LAG_S = 0.0
LOCAL_ROUTING = "random"
# Where the autoscaler finds Prometheus, gunicorn and its own /metrics: the simulator stands in for all three.
PLUMBING_ENV = ("SCALER", "GUNICORN_PIDFILE", "PROMETHEUS_URL", "METRICS_HOST", "METRICS_PORT")


def run_profile(run: RealRun) -> Profile:
    """The replica the run had: the probe's profile, the run's MAX_QUEUE and start-up, no pod overhead."""
    sizing = run.record.sizing
    try:
        if run.calibration is not None:
            profile = load_profile(run.calibration)
        else:
            profile = from_capacity_report(CapacityReport.from_dict(sizing["probe"]), f"{run.path}: sizing.probe")
        return replace(
            profile, pod_overhead_s=0.0,
            queue_limit=int(sizing.get("max_queue") or profile.queue_limit),
            # A run recorded before the stack set a wait budget admitted by count alone.
            queue_wait_ms=float(sizing.get("max_queue_wait_ms", 0.0)),
            startup_s=float(sizing.get("startup_s") or profile.startup_s),
            slo_ms=float(sizing.get("slo_ms") or profile.slo_ms),
            capacity_within_slo_rps=float(sizing.get("capacity_within_slo_rps") or profile.capacity_within_slo_rps),
            target_inflight_per_replica=float(sizing.get("target_inflight_per_replica")
                                              or profile.target_inflight_per_replica)).validate()
    except ProfileError as exc:
        raise CalibrationError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{run.path}: sizing is not usable ({type(exc).__name__}: {exc})") from None


def run_inputs(run: RealRun, shared_core_slowdown: float = LOCAL_SHARED_CORE_SLOWDOWN,
               seed: int = 0) -> tuple[Schedule, RunSettings]:
    """(schedule, RunSettings) of the run, checked against what the run recorded."""
    plan, env = run.record.plan, run.record.autoscaler_env
    try:
        check_run_name(run.name)
    except RunNameError as exc:
        raise CalibrationError(f"{run.path}: plan.name: {exc}") from None
    try:
        base = load_config([], {k: str(v) for k, v in env.items() if k not in PLUMBING_ENV})
        config = policy_config(run.name, base)
    except ConfigError as exc:
        raise CalibrationError(f"{run.path}: autoscaler_env: {exc}") from None
    try:
        initial = int(plan.get("initial_replicas") or 0)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{run.path}: plan: replica counts must be integers ({exc})") from None
    if (config.min_replicas, config.max_replicas) != (plan["min_replicas"], plan["max_replicas"]):
        raise CalibrationError(f"{run.path}: {run.name} in the simulator holds {config.min_replicas}.."
                               f"{config.max_replicas} replicas, the run's plan {plan['min_replicas']}.."
                               f"{plan['max_replicas']}")
    if initial and initial != config.min_replicas:
        raise CalibrationError(f"{run.path}: the run started with {plan['initial_replicas']} replicas; the "
                               f"simulator starts at MIN_REPLICAS ({config.min_replicas})")
    schedule = _schedule(run)
    scheduled = run.record.requests.get("scheduled")
    if scheduled is not None and int(scheduled) != len(schedule):
        lt = run.loadtest
        raise CalibrationError(f"{run.path}: the schedule rebuilt from {run.trace.name} (scale {lt['scale']}, seed "
                               f"{lt['seed']}, {lt['arrivals']}) has {len(schedule)} requests, the run scheduled "
                               f"{scheduled}: not the same arrivals")
    settings = RunSettings(profile=run_profile(run), config=config, scrape_interval_s=run.scrape_interval_s,
                           cluster=ClusterSettings(routing=LOCAL_ROUTING, removal_lag_s=LOCAL_REMOVAL_LAG_S,
                                                   shared_core_slowdown=shared_core_slowdown), seed=seed)
    return schedule, settings


def _schedule(run: RealRun) -> Schedule:
    """The arrivals the load tester sent: its own schedule over the run's trace and parameters."""
    lt = run.loadtest
    try:
        workload = load_workload(run.trace)
        return build_schedule(workload.rates_rps, seed=int(lt["seed"]), arrivals=str(lt["arrivals"]),
                              scale=float(lt["scale"]), speedup=float(lt.get("speedup") or 1.0),
                              duration_s=None if lt.get("duration_s") is None else float(lt["duration_s"]))
    except WorkloadError as exc:
        raise CalibrationError(f"{run.trace}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{run.path}: the load tester's parameters are not usable ({exc})") from None


def inputs_key(run: RealRun) -> str:
    """What decides a simulation: runs with equal keys (a policy's repeats) share one."""
    env = {k: v for k, v in run.record.autoscaler_env.items() if k not in PLUMBING_ENV}
    plan, sizing = run.record.plan, run.record.sizing
    return json.dumps([run.name, env, run.loadtest, run.scrape_interval_s, str(run.trace), str(run.calibration),
                       plan.get("min_replicas"), plan.get("max_replicas"),
                       {k: sizing.get(k) for k in ("max_queue", "max_queue_wait_ms", "startup_s", "slo_ms")}], sort_keys=True)
