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
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from autoscaler.config import ConfigError, load_config
from comparison.plots import plot_comparison
from comparison.table import write_comparison
from comparison.targets import SIM_GOALS, target_lines
from loadtester.config import ARRIVALS
from loadtester.schedule import build_schedule
from loadtester.workload import WorkloadError, load_workload
from loadtester.trace_sizing import (PEAK_MARGIN, PEAK_WINDOW_S, peak_rate_rps, replicas_for_peak,  # noqa: F401
                                     scale_for_peak_replicas)
from settings import SettingError, add_flags, read_values, setting
from sim.cluster import ROUTINGS, ClusterSettings
from sim.profile import ProfileError, default_profile
from sim.profile_sources import load_profile
from sim.replay_shape import counting_noise, noise_warning, replay_rates
from planning.runs import SIM_RUNS, RunNameError, check_run_name
from sim.run import DEFAULT_SCRAPE_INTERVAL_S, START_MIN, STARTS, RunSettings, run_policy


class UsageError(SettingError):
    """Bad input; the message names the flag."""


@dataclass(frozen=True)
class SimOptions:
    """The flags of `python -m sim`; prepare() checks what needs the trace, the profile or the environment."""

    trace: str = setting(flag="--trace", metavar="FILE", doc="the workload (wl.txt format: one rate a second)")
    scale: float | None = setting(None, flag="--scale", metavar="S", lo=0, lo_open=True,
                                  doc="multiply every rate (none: 1); not with --peak-replicas")
    peak_replicas: int | None = setting(None, flag="--peak-replicas", metavar="N", lo=1, doc=(
        f"scale the trace so its peak (the highest {PEAK_WINDOW_S:g} s mean rate) needs N replicas at the profile's "
        f"within-SLO capacity: (N - {PEAK_MARGIN:g}) x that capacity; MAX_REPLICAS defaults to N then"))
    policies: str = setting(",".join(SIM_RUNS), flag="--policies", metavar="LIST", doc=(
        "comma-separated runs: any of the default's, hpa-N (POLICY=hpa at N% CPU) and static-N (N replicas)"))
    profile: str | None = setting(None, flag="--profile", metavar="FILE", doc=(
        "a capacity probe's --json output, a local calibration cache file (.cache/calibration/) or a sim "
        "profile JSON (none: the development machines' measured figures, sim/profile.py)"))
    slo_ms: float | None = setting(None, flag="--slo-ms", metavar="MS", unit="ms", lo=0, lo_open=True, doc=(
        "the p95 latency SLO (none: SLO_P95_MS if set, else the profile's derived SLO)"))
    max_replicas: int | None = setting(None, flag="--max-replicas", metavar="N", lo=1, doc=(
        "MAX_REPLICAS (none: the environment's, else --peak-replicas, else the autoscaler's default)"))
    seed: int = setting(0, flag="--seed", metavar="N", lo=0, doc="arrivals, routing and start-up draws")
    arrivals: str = setting("poisson", flag="--arrivals", choices=ARRIVALS, doc=(
        "poisson: a seeded Poisson process at each second's rate; uniform: each second's count (fractions "
        "carried over), evenly spaced (loadtester/schedule.py, as the load tester draws them)"))
    speedup: float = setting(1.0, flag="--speedup", metavar="X", lo=0, lo_open=True, doc=(
        "divide every offset by X (and so multiply every rate): a long trace replayed faster"))
    coarse_s: int | None = setting(None, flag="--coarse-s", metavar="S", unit="s", lo=1, doc=(
        "replay the trace's S-second means (of its own seconds) instead of each second's count, with the "
        "arrivals drawn from that shape: a log of a few requests a second, scaled up, without its counting "
        "noise scaled too (none: every second as it is)"))
    duration_s: float | None = setting(None, flag="--duration", metavar="S", unit="s", lo=0, lo_open=True,
                                       doc="cut the replay after S seconds")
    start: str = setting(START_MIN, flag="--start", choices=STARTS, doc=(
        "the replicas every run starts with: min (MIN_REPLICAS, a fresh deployment, as the local stack starts) "
        "or first-need (what the trace's first seconds need, the oracle's first count: a deployment already "
        "serving the traffic)"))
    routing: str = setting("random", flag="--routing", choices=ROUTINGS, doc="how the Service spreads requests")
    removal_lag_s: float = setting(ClusterSettings.removal_lag_s, flag="--removal-lag-s", metavar="S", unit="s",
                                   lo=0, doc="a removed pod's time in the Service's endpoints (kube-proxy's sync)")
    pod_overhead_s: float | None = setting(None, flag="--pod-overhead-s", metavar="S", unit="s", lo=0,
                                           doc="added to a worker's start-up for a pod (none: the profile's)")
    scrape_interval_s: float = setting(DEFAULT_SCRAPE_INTERVAL_S, flag="--scrape-interval-s", metavar="S", unit="s",
                                       lo=0, lo_open=True,
                                       doc="Prometheus' scrape interval (prometheus/prometheus.yml's)")
    out: str | None = setting(None, flag="--out", metavar="DIR", doc=(
        "where comparison.json, .csv, .md and .png go (none: reports/sim-<UTC time>)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description=(
        "Replay a trace through a simulated cluster of the service and the real autoscaler code, once per "
        "policy, and compare them (with an oracle that knows the future as the lower bound of cost)."))
    add_flags(parser, SimOptions)  # values stay text: options_from() converts and checks them
    return parser


def options_from(args: argparse.Namespace) -> SimOptions:
    """The parsed flags converted and checked. Raises UsageError."""
    options = SimOptions(**read_values(SimOptions, {}, args, error=UsageError))
    if options.scale is not None and options.peak_replicas is not None:
        raise UsageError("--peak-replicas is not allowed with --scale: give one of them", "--peak-replicas",
                         options.peak_replicas)
    return options


def read_options(argv: Sequence[str]) -> SimOptions:
    """A `python -m sim` command line's options (sim/matrix.py builds them). Raises UsageError."""
    return options_from(build_parser().parse_args(list(argv)))


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    try:
        plan = prepare(options_from(args), os.environ if environ is None else environ)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=stderr)
        return 2
    for warning in plan["warnings"]:
        print(f"{parser.prog}: warning: {warning}", file=stderr)
    return execute(plan, stdout)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The flags, or argparse's exit status where it printed its message (a missing or malformed flag)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def prepare(options: SimOptions, environ: Mapping[str, str]) -> dict:
    """Everything else checked before anything runs (the flags' ranges were, by options_from()). Raises
    UsageError."""
    try:
        workload = load_workload(options.trace)
    except WorkloadError as exc:
        raise UsageError(f"--trace: {exc}") from None
    try:
        profile = load_profile(options.profile) if options.profile else default_profile()
    except ProfileError as exc:
        raise UsageError(f"--profile: {exc}") from None
    if options.pod_overhead_s is not None:
        profile = replace(profile, pod_overhead_s=options.pod_overhead_s)
    try:
        policies = [check_run_name(name.strip()) for name in options.policies.split(",") if name.strip()]
    except RunNameError as exc:
        raise UsageError(f"--policies: {exc}") from None
    _require(bool(policies), "--policies: name at least one policy")
    _require(len(set(policies)) == len(policies), f"--policies={options.policies}: a policy is named twice")

    rates = replay_rates(workload.rates_rps, options.coarse_s)
    peak_rps = peak_rate_rps(rates, options.speedup)
    if options.peak_replicas is not None:
        scale = scale_for_peak_replicas(peak_rps, options.peak_replicas, profile.capacity_within_slo_rps)
    else:
        scale = options.scale if options.scale is not None else 1.0

    try:
        config = load_config([], environ)
    except ConfigError as exc:
        raise UsageError(f"environment: {exc}") from None
    overrides: dict = {}
    if options.slo_ms is not None:
        overrides["slo_p95_ms"] = options.slo_ms
    elif not environ.get("SLO_P95_MS"):
        overrides["slo_p95_ms"] = profile.slo_ms
    if options.max_replicas is not None:
        overrides["max_replicas"] = options.max_replicas
    elif not environ.get("MAX_REPLICAS") and options.peak_replicas is not None:
        overrides["max_replicas"] = max(options.peak_replicas, config.min_replicas)
    if not environ.get("CAPACITY_RPS_PER_REPLICA"):
        overrides["capacity_rps_per_replica"] = profile.capacity_within_slo_rps
    if not environ.get("TARGET_INFLIGHT_PER_REPLICA"):
        overrides["target_inflight_per_replica"] = profile.target_inflight_per_replica
    try:
        config = replace(config, **overrides).validate()
    except ConfigError as exc:
        flag = "--max-replicas" if "MAX_REPLICAS" in str(exc) and options.max_replicas is not None else "settings"
        raise UsageError(f"{flag}: {exc}") from None

    out_dir = Path(options.out) if options.out else Path("reports") / time.strftime("sim-%Y%m%d-%H%M%S", time.gmtime())
    settings = RunSettings(profile=profile, config=config, scrape_interval_s=options.scrape_interval_s,
                           cluster=ClusterSettings(routing=options.routing, removal_lag_s=options.removal_lag_s),
                           seed=options.seed, start=options.start)
    noise = counting_noise(workload.rates_rps, scale, options.speedup, options.coarse_s)
    schedule = build_schedule(rates, seed=options.seed, arrivals=options.arrivals, scale=scale,
                              speedup=options.speedup, duration_s=options.duration_s)
    trace = {"path": str(options.trace), "seconds": workload.duration_s, "peak_rps": round(peak_rps, 4),
             "peak_window_s": PEAK_WINDOW_S, "scaled_peak_rps": round(peak_rps * scale, 4),
             "arrivals": options.arrivals, "seed": options.seed, "speedup": options.speedup,
             "coarse_s": options.coarse_s, "duration_s": schedule.duration_s, "requests": len(schedule),
             "counting_noise": noise.as_dict() if noise else None}
    return {"policies": policies, "schedule": schedule, "settings": settings, "scale": scale, "trace": trace,
            "out_dir": out_dir, "peak_replicas": options.peak_replicas,
            "warnings": [noise_warning(str(options.trace), noise)] if noise else []}


def execute(plan: dict, stdout: TextIO) -> int:
    compare(plan, stdout)
    return 0


def compare(plan: dict, stdout: TextIO) -> dict:
    """Run every policy of the plan; print the table and the targets; write comparison.json, .csv, .md and
    .png. Returns comparison.table.write_comparison's outcome, with each run's RunResult under "results"."""
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
    return {**outcome, "results": results}


def settings_dict(settings: RunSettings, plan: dict) -> dict:
    autoscaler = {k: v for k, v in settings.config.as_dict().items()
                  if k not in ("queries", "prometheus_url", "target_namespace", "metrics_host", "metrics_port")}
    return {"autoscaler": autoscaler, "scrape_interval_s": settings.scrape_interval_s,
            "routing": settings.cluster.routing, "removal_lag_s": settings.cluster.removal_lag_s,
            "peak_replicas": plan["peak_replicas"], "seed": settings.seed, "start": settings.start}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)
