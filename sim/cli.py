"""`python -m sim --trace FILE [...]`: replay a trace through every policy, print and write the comparison.

The comparison (its rows, table, targets, files and plot) is comparison/'s, the same as the local stack's
`make compare`; sim/matrix.py (`make simulate`) runs this for several traces and sums them up.

The autoscaler's settings come from the environment variables the autoscaler itself reads
(autoscaler/config.py; POLL_INTERVAL_S, RATE_WINDOW_S, MIN_REPLICAS, ...), then these flags. What the
profile measures is the default of what the local stack derives from its measurement too: the SLO
(unless --slo-ms or SLO_P95_MS), CAPACITY_RPS_PER_REPLICA and TARGET_INFLIGHT_PER_REPLICA (unless set in
the environment). Bad input exits 2 with a message naming the flag (or the variable).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence, TextIO

import numpy as np

from autoscaler.config import ConfigError, load_config
from comparison.plots import plot_comparison
from comparison.table import write_comparison
from comparison.targets import SIM_GOALS, target_lines
from loadtester.schedule import build_schedule
from loadtester.workload import WorkloadError, load_workload
from local.sizing import PEAK_MARGIN
from sim.cluster import ROUTINGS, ClusterSettings
from sim.profile import ProfileError, default_profile
from sim.profiles import load_profile
from sim.run import POLICIES, PolicyError, RunSettings, check_policy, run_policy

PEAK_WINDOW_S = 60.0
# The in-cluster Prometheus' scrape interval (prometheus/prometheus.yml, global.scrape_interval).
DEFAULT_SCRAPE_INTERVAL_S = 5.0


class UsageError(Exception):
    """Bad input; the message names the flag."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description=(
        "Replay a trace through a simulated cluster of the service and the real autoscaler code, once per "
        "policy, and compare them (with an oracle that knows the future as the lower bound of cost)."))
    p.add_argument("--trace", required=True, metavar="FILE", help="the workload (wl.txt format: one rate a second)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--scale", type=float, default=None, metavar="S", help="multiply every rate (none: 1)")
    group.add_argument("--peak-replicas", type=int, default=None, metavar="N", help=(
        f"scale the trace so its peak (the highest {PEAK_WINDOW_S:g} s mean rate) needs N replicas at the profile's "
        f"within-SLO capacity: (N - {PEAK_MARGIN:g}) x that capacity; MAX_REPLICAS defaults to N then"))
    p.add_argument("--policies", default=",".join(POLICIES), metavar="LIST", help="comma-separated runs: any of "
                   "the default's, hpa-N (POLICY=hpa at N%% CPU) and static-N (N replicas)")
    p.add_argument("--profile", default=None, metavar="FILE", help=(
        "a capacity probe's --json output, a local calibration cache file (.cache/calibration/) or a sim "
        "profile JSON (none: the development machines' measured figures, sim/profile.py)"))
    p.add_argument("--slo-ms", type=float, default=None, metavar="MS", help="the p95 latency SLO (none: SLO_P95_MS "
                   "if set, else the profile's derived SLO)")
    p.add_argument("--max-replicas", type=int, default=None, metavar="N", help="MAX_REPLICAS (none: the "
                   "environment's, else --peak-replicas, else the autoscaler's default)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="arrivals, routing and start-up draws")
    p.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson", help=(
        "poisson: a seeded Poisson process at each second's rate; uniform: each second's count (fractions "
        "carried over), evenly spaced (loadtester/schedule.py, as the load tester draws them)"))
    p.add_argument("--speedup", type=float, default=1.0, metavar="X", help="divide every offset by X (and so "
                   "multiply every rate): a long trace replayed faster")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="cut the replay after S seconds")
    p.add_argument("--routing", choices=ROUTINGS, default="random", help="how the Service spreads requests")
    p.add_argument("--removal-lag-s", type=float, default=ClusterSettings.removal_lag_s, metavar="S",
                   help="a removed pod's time in the Service's endpoints (kube-proxy's sync)")
    p.add_argument("--pod-overhead-s", type=float, default=None, metavar="S",
                   help="added to a worker's start-up for a pod (none: the profile's)")
    p.add_argument("--scrape-interval-s", type=float, default=DEFAULT_SCRAPE_INTERVAL_S, metavar="S",
                   help="Prometheus' scrape interval (prometheus/prometheus.yml's)")
    p.add_argument("--out", default=None, metavar="DIR", help="where comparison.json, .csv, .md and .png go "
                   "(none: reports/sim-<UTC time>)")
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    try:
        plan = prepare(args, os.environ if environ is None else environ)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=stderr)
        return 2
    return execute(plan, stdout)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The flags, or argparse's exit status where it printed its message (a missing or malformed flag)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def prepare(args: argparse.Namespace, environ: Mapping[str, str]) -> dict:
    """Everything checked before anything runs. Raises UsageError."""
    try:
        workload = load_workload(args.trace)
    except WorkloadError as exc:
        raise UsageError(f"--trace: {exc}") from None
    try:
        profile = load_profile(args.profile) if args.profile else default_profile()
    except ProfileError as exc:
        raise UsageError(f"--profile: {exc}") from None
    if args.pod_overhead_s is not None:
        _require(args.pod_overhead_s >= 0, f"--pod-overhead-s={args.pod_overhead_s:g} must be >= 0")
        profile = replace(profile, pod_overhead_s=args.pod_overhead_s)
    try:
        policies = [check_policy(name.strip()) for name in args.policies.split(",") if name.strip()]
    except PolicyError as exc:
        raise UsageError(f"--policies: {exc}") from None
    _require(bool(policies), "--policies: name at least one policy")
    _require(len(set(policies)) == len(policies), f"--policies={args.policies}: a policy is named twice")
    for flag, value in (("--scale", args.scale), ("--speedup", args.speedup), ("--duration", args.duration),
                        ("--slo-ms", args.slo_ms), ("--scrape-interval-s", args.scrape_interval_s)):
        if value is not None:
            _require(math.isfinite(value) and value > 0, f"{flag}={value:g} must be > 0")
    _require(args.peak_replicas is None or args.peak_replicas >= 1,
             f"--peak-replicas={args.peak_replicas} must be >= 1")
    _require(args.max_replicas is None or args.max_replicas >= 1, f"--max-replicas={args.max_replicas} must be >= 1")
    _require(args.removal_lag_s >= 0, f"--removal-lag-s={args.removal_lag_s:g} must be >= 0")

    peak_rps = peak_rate_rps(workload.rates_rps, args.speedup)
    if args.peak_replicas is not None:
        scale = scale_for_peak_replicas(peak_rps, args.peak_replicas, profile.capacity_within_slo_rps)
    else:
        scale = args.scale if args.scale is not None else 1.0

    try:
        config = load_config([], environ)
    except ConfigError as exc:
        raise UsageError(f"environment: {exc}") from None
    overrides: dict = {}
    if args.slo_ms is not None:
        overrides["slo_p95_ms"] = args.slo_ms
    elif not environ.get("SLO_P95_MS"):
        overrides["slo_p95_ms"] = profile.slo_ms
    if args.max_replicas is not None:
        overrides["max_replicas"] = args.max_replicas
    elif not environ.get("MAX_REPLICAS") and args.peak_replicas is not None:
        overrides["max_replicas"] = max(args.peak_replicas, config.min_replicas)
    if not environ.get("CAPACITY_RPS_PER_REPLICA"):
        overrides["capacity_rps_per_replica"] = profile.capacity_within_slo_rps
    if not environ.get("TARGET_INFLIGHT_PER_REPLICA"):
        overrides["target_inflight_per_replica"] = profile.target_inflight_per_replica
    try:
        config = replace(config, **overrides).validate()
    except ConfigError as exc:
        flag = "--max-replicas" if "MAX_REPLICAS" in str(exc) and args.max_replicas is not None else "settings"
        raise UsageError(f"{flag}: {exc}") from None

    out_dir = Path(args.out) if args.out else Path("reports") / time.strftime("sim-%Y%m%d-%H%M%S", time.gmtime())
    settings = RunSettings(profile=profile, config=config, scrape_interval_s=args.scrape_interval_s,
                           cluster=ClusterSettings(routing=args.routing, removal_lag_s=args.removal_lag_s),
                           seed=args.seed)
    schedule = build_schedule(workload.rates_rps, seed=args.seed, arrivals=args.arrivals, scale=scale,
                              speedup=args.speedup, duration_s=args.duration)
    trace = {"path": str(args.trace), "seconds": workload.duration_s, "peak_rps": round(peak_rps, 4),
             "peak_window_s": PEAK_WINDOW_S, "scaled_peak_rps": round(peak_rps * scale, 4),
             "arrivals": args.arrivals, "seed": args.seed, "speedup": args.speedup, "duration_s": schedule.duration_s,
             "requests": len(schedule)}
    return {"policies": policies, "schedule": schedule, "settings": settings, "scale": scale, "trace": trace,
            "out_dir": out_dir, "peak_replicas": args.peak_replicas}


def peak_rate_rps(rates_rps: Sequence[float], speedup: float = 1.0, window_s: float = PEAK_WINDOW_S) -> float:
    """The highest mean rate over `window_s` of replay time (one noisy second is no peak)."""
    rates = np.asarray(rates_rps, dtype=np.float64) * speedup
    width = max(1, min(len(rates), int(round(window_s * speedup))))
    sums = np.convolve(rates, np.ones(width), mode="valid")
    return float(sums.max() / width)


def scale_for_peak_replicas(peak_rps: float, replicas: int, capacity_rps: float) -> float:
    """--peak-replicas N: the scale that puts the peak at (N - PEAK_MARGIN) x the within-SLO capacity."""
    return round((replicas - PEAK_MARGIN) * capacity_rps / peak_rps, 6)


def replicas_for_peak(peak_rps: float, capacity_rps: float) -> int:
    """The replicas a peak needs, as --peak-replicas counts them (the inverse of scale_for_peak_replicas)."""
    return max(1, math.ceil(peak_rps / capacity_rps + PEAK_MARGIN - 1e-9))


def execute(plan: dict, stdout: TextIO) -> int:
    compare(plan, stdout)
    return 0


def compare(plan: dict, stdout: TextIO) -> dict:
    """Run every policy of the plan; print the table and the targets; write comparison.json, .csv, .md and
    .png. Returns comparison.table.write_comparison's outcome."""
    settings: RunSettings = plan["settings"]
    config = settings.config
    schedule = plan["schedule"]
    out_dir: Path = plan["out_dir"]
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"sim: {plan['trace']['path']} x{plan['scale']:g}: {len(schedule)} requests over {schedule.duration_s:g} s "
          f"(peak {plan['trace']['scaled_peak_rps']:.1f} req/s over {PEAK_WINDOW_S:g} s); {settings.profile.source}; "
          f"{settings.profile.saturation_rps:.1f} req/s per replica at saturation, "
          f"{settings.profile.capacity_within_slo_rps:g} within SLO p95 {config.slo_p95_ms:g} ms; "
          f"replicas {config.min_replicas}..{config.max_replicas}", file=stdout, flush=True)
    results = {}
    for name in plan["policies"]:
        started = time.perf_counter()
        results[name] = run_policy(name, schedule, settings)
        print(f"sim: {name} done in {time.perf_counter() - started:.1f} s", file=stdout, flush=True)
    context = {"trace": plan["trace"], "scale": plan["scale"], "profile": settings.profile.as_dict(),
               "settings": settings_dict(settings, plan)}
    outcome = write_comparison(out_dir, {name: [r.row] for name, r in results.items()}, context, SIM_GOALS)
    for line in outcome["table"] + [""] + target_lines(outcome["targets"]):
        print(line, file=stdout)
    plot_comparison(out_dir / "comparison.png", {name: r.result for name, r in results.items()},
                    config.slo_p95_ms, f"simulated: {Path(plan['trace']['path']).name} x{plan['scale']:g}, "
                    f"{config.min_replicas}..{config.max_replicas} replicas, SLO p95 {config.slo_p95_ms:g} ms")
    print(f"sim: wrote comparison.json, .csv, .md and .png in {out_dir}", file=stdout)
    return outcome


def settings_dict(settings: RunSettings, plan: dict) -> dict:
    autoscaler = {k: v for k, v in settings.config.as_dict().items()
                  if k not in ("queries", "prometheus_url", "target_namespace", "metrics_host", "metrics_port")}
    return {"autoscaler": autoscaler, "scrape_interval_s": settings.scrape_interval_s,
            "routing": settings.cluster.routing, "removal_lag_s": settings.cluster.removal_lag_s,
            "peak_replicas": plan["peak_replicas"], "seed": settings.seed}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)
