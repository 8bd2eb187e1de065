"""How close to the oracle can any reactive autoscaler get? `python -m bench.reactive_frontier`.

For cases of the simulator's matrix (sim/matrix.py, the same flags and MAX_REPLICAS), it runs the oracle,
the `slo` policy as configured, and sim.oracle.lagged_plan (a planner that counts every arrival exactly
but only --lag-s after it, and keeps what it asks for --hold-s) at each headroom of --headroom-grid. It
prints, per case, each run's windows within the SLO and replica-seconds against the oracle's, and the
cheapest headroom whose windows reach the 99% goal: the reactive frontier, what the oracle's knowledge of
the future is worth on that trace. A policy near the frontier can only get closer to the oracle by
predicting traffic, not by reacting better.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from planning.runs import ORACLE
from sim import cli, matrix
from sim.oracle import lagged_plan
from sim.run import DEFAULT_SCRAPE_INTERVAL_S, arrivals_per_step, run_policy
from sim.tune import Score, score_span

DEFAULT_GRID = "1.0,1.1,1.2,1.3,1.4,1.5,1.6"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.reactive_frontier", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="twitter-1h,nasa-1d", help="cases of sim/matrix.py (default: %(default)s)")
    parser.add_argument("--headroom-grid", default=DEFAULT_GRID, help="headrooms tried (default: %(default)s)")
    parser.add_argument("--lag-s", type=float, default=DEFAULT_SCRAPE_INTERVAL_S,
                        help="how late the planner learns of an arrival, s (default: one scrape interval, %(default)s)")
    parser.add_argument("--mean-s", type=float, default=DEFAULT_SCRAPE_INTERVAL_S,
                        help="the span it averages, s (default: one scrape interval, %(default)s)")
    parser.add_argument("--hold-s", type=float, default=30.0,
                        help="how long it keeps what it asked for, s (default: %(default)s, as slo's stabilization)")
    parser.add_argument("--duration", type=float, default=None, help="cut every case after S seconds (a quick look)")
    parser.add_argument("--score-from-s", type=float, default=0.0,
                        help="score windows and replica-seconds from this second of the replay on, e.g. 1800 for "
                             "the half python -m sim tune holds out (default: %(default)s)")
    return parser


def score(result, from_s: float, duration_s: float) -> Score:
    """Windows kept, windows with requests and replica-seconds over [from_s, duration_s) (sim/tune.py's score)."""
    return score_span(result.windows, result.ready_timeline, from_s, duration_s)


def frontier(case: matrix.Case, grid: Sequence[float], lag_s: float, mean_s: float, hold_s: float,
             duration_s: float | None, from_s: float = 0.0) -> list[str]:
    """The table and verdict of one case. Raises sim.cli.UsageError on a case it cannot replay."""
    # The case exactly as the matrix replays it; nothing is written to its --out.
    argv = matrix.case_argv(case, Path("reports") / case.name, policies="slo,oracle", seed=0, duration_s=duration_s,
                            profile=None)
    plan = cli.prepare(cli.read_options(argv), {})
    schedule, settings = plan["schedule"], plan["settings"]
    config = settings.config
    total_s = schedule.duration_s
    oracle = score(run_policy(ORACLE, schedule, settings), from_s, total_s)
    slo = score(run_policy("slo", schedule, settings), from_s, total_s)
    oracle_rs, slo_rs = oracle.replica_seconds, slo.replica_seconds
    rows = [("oracle", oracle.windows_met, oracle.windows, oracle_rs), ("slo", slo.windows_met, slo.windows, slo_rs)]
    arrivals = arrivals_per_step(schedule)
    best = None
    for headroom in grid:
        desired = lagged_plan(arrivals, settings.profile.capacity_within_slo_rps, headroom, lag_s, mean_s, hold_s,
                              config.min_replicas, config.max_replicas)
        found = score(run_policy(f"reactive x{headroom:g}", schedule, settings, planned=desired), from_s, total_s)
        rows.append((f"reactive x{headroom:g}", found.windows_met, found.windows, found.replica_seconds))
        if best is None and found.feasible():
            best = rows[-1]
    lines = [f"### {case.name}: {case.what}", "",
             f"reactive: every arrival counted {lag_s:g} s late over {mean_s:g} s, held {hold_s:g} s; "
             f"replicas {config.min_replicas}..{config.max_replicas}; scored over [{from_s:g}, {total_s:g}) s", "",
             "| run | windows in SLO | replica-s | vs oracle |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {met / n:.1%} ({met}/{n}) | {rs:.0f} | {rs / oracle_rs:.2f}x |" for name, met, n, rs in rows]
    verdict = (f"the reactive frontier: {best[0]} at {best[3] / oracle_rs:.2f}x the oracle" if best
               else "no headroom of the grid reached 99% of the windows")
    return lines + ["", f"{verdict}; slo at {slo_rs / oracle_rs:.2f}x.", ""]


def check(args: argparse.Namespace) -> list[float]:
    """The headroom grid; raises sim.cli.UsageError naming the flag and the value."""
    for flag, value, lowest, what in (("--lag-s", args.lag_s, 0.0, "seconds >= 0"),
                                      ("--mean-s", args.mean_s, 1.0, "seconds >= 1"),
                                      ("--hold-s", args.hold_s, 0.0, "seconds >= 0")):
        if not value >= lowest:
            raise cli.UsageError(f"{flag}={value:g}: expected {what}")
    if not args.score_from_s >= 0:
        raise cli.UsageError(f"--score-from-s={args.score_from_s:g}: expected seconds >= 0")
    if args.duration is not None and not args.duration > 0:
        raise cli.UsageError(f"--duration={args.duration:g}: expected seconds > 0")
    try:
        grid = sorted(float(x) for x in args.headroom_grid.split(",") if x.strip())
    except ValueError:
        grid = []
    if not grid or any(not h > 0 for h in grid):
        raise cli.UsageError(f"--headroom-grid={args.headroom_grid}: expected comma-separated factors > 0")
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cases, grid = matrix.select(args.cases), check(args)
        for case in cases:
            for line in frontier(case, grid, args.lag_s, args.mean_s, args.hold_s, args.duration, args.score_from_s):
                print(line, flush=True)
    except cli.UsageError as exc:
        print(f"bench.reactive_frontier: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
