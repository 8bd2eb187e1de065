"""`python -m sim.matrix` (`make simulate`): every policy on several traces, and one summary of the goals.

The default matrix: wl.txt at x1, x10 and x50, and the two real traces of sim/traces/ (the Twitter hour
and the NASA day), each scaled with --peak-replicas so that its peak needs tens of replicas, and wl.txt x10
once more without headroom (below); every policy (planning/runs.py SIM_RUNS), the same seed. Each case is
one `python -m sim` comparison (sim/cli.py: the same checks, the same comparison/ table, targets and plot)
written to its own folder; then summary.md and summary.json say, per trace, whether `slo` met each of the
four goals (comparison/targets.py SIM_GOALS), and what the oracle and static-max reached beside it:

- >= 99% of 10 s windows within the SLO;
- >= 25% fewer replica-seconds than hpa-50;
- fewer SLO-missing windows than kpa at equal or fewer replica-seconds;
- within 1.2x of the oracle's replica-seconds.

The NASA day is replayed 24x faster (`--speedup 24`: the day in one hour; at its own pace the whole day
is 45 M requests per policy, an hour of CPU for the matrix) from its 10-minute means (`--coarse-s 600`):
a log of 1 req/s scaled 37-fold keeps 6% counting noise in every 10 s window even summed 24 seconds to
one, bursts a real service at 1600 req/s would not see (sim/replay_shape.py).

Every case gets MAX_REPLICAS = --headroom (SIM_HEADROOM, default 1.5) x the replicas that the highest
10 s mean rate of its scaled trace needs (counted as --peak-replicas counts them), rounded up, at least 2:
a real deployment sets its maximum above the peak it expects. --peak-replicas sizes a peak by its 60 s
mean, and the 10 s need is the least with which static-max or the oracle can hold the SLO through a
burst shorter than that (wl.txt's lasts 45 s; the real traces' are shorter still) in an SLO window; even
there a window that offers more than the within-SLO capacity (90% of saturation) misses. The case
`wl-x10-no-headroom` keeps MAX_REPLICAS at the 10 s need alone, to show what a tight cap costs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from comparison.targets import GOALS, SIM_GOALS, TARGET_ORACLE_RATIO
from loadtester.workload import WorkloadError, load_workload
from settings import add_flags, read_values, setting
from sim import cli
from sim.profile import ProfileError, default_profile
from sim.profile_sources import load_profile
from sim.replay_shape import replay_rates
from sim.attribution import attribution_lines
from sim.run import EPOCH_UNIX_S, START_FIRST_NEED
from planning.runs import SIM_RUNS

REPO = Path(__file__).resolve().parent.parent
TRACES = Path(__file__).resolve().parent / "traces"


@dataclass(frozen=True)
class Case:
    """One trace of the matrix and the `python -m sim` flags that shape it."""

    name: str               # the folder it writes, and its row in the summary
    trace: Path
    flags: tuple[str, ...]  # --scale or --peak-replicas, and any --speedup / --coarse-s / --duration
    what: str               # one line for the summary
    headroom: float | None = None   # MAX_REPLICAS over the 10 s need (none: the matrix's --headroom)


DEFAULT_CASES = (
    Case("wl-x1", REPO / "wl.txt", ("--scale", "1"), "wl.txt x1 (300 s)"),
    Case("wl-x10", REPO / "wl.txt", ("--scale", "10"), "wl.txt x10 (300 s)"),
    Case("wl-x50", REPO / "wl.txt", ("--scale", "50"), "wl.txt x50 (300 s)"),
    Case("twitter-1h", TRACES / "twitter-1h.txt", ("--peak-replicas", "50"),
         "sim/traces/twitter-1h.txt, its peak at 50 replicas (1 h)"),
    Case("nasa-1d", TRACES / "nasa-1d.txt", ("--peak-replicas", "30", "--speedup", "24", "--coarse-s", "600"),
         "sim/traces/nasa-1d.txt 24x faster (the day in 1 h) from its 10-minute means, its peak at 30 replicas"),
    Case("wl-x10-no-headroom", REPO / "wl.txt", ("--scale", "10"),
         "wl.txt x10 (300 s), MAX_REPLICAS at the 10 s need without headroom", headroom=1.0),
)
SHORT = {"windows": ">= 99% windows in SLO", "cost_vs_hpa_50": ">= 25% cheaper than hpa-50",
         "beats_kpa": "beats kpa", "near_oracle": f"<= {TARGET_ORACLE_RATIO:g}x oracle"}
MIN_MAX_REPLICAS = 2
MAX_REPLICAS_WINDOW_S = 10.0   # the SLO's window
BESIDE = ("slo", "oracle", "static-max")   # what slo reached beside what was possible


@dataclass(frozen=True)
class MatrixOptions:
    """The flags of `python -m sim.matrix`; each case passes them on to `python -m sim`."""

    cases: str = setting(",".join(c.name for c in DEFAULT_CASES), flag="--cases", metavar="LIST",
                         doc="comma-separated subset of the matrix, run in the order named")
    policies: str = setting(",".join(SIM_RUNS), flag="--policies", metavar="LIST", doc="as python -m sim")
    seed: int = setting(0, flag="--seed", metavar="N", lo=0, doc="the same for every case")
    headroom: float = setting(1.5, flag="--headroom", env="SIM_HEADROOM", metavar="X", unit="factor", lo=1, hi=10,
                              doc=("MAX_REPLICAS of a case = X x the replicas its highest 10 s mean rate needs, "
                                   "rounded up (SIM_HEADROOM too; 1: no headroom); wl-x10-no-headroom keeps 1"))
    duration_s: float | None = setting(None, flag="--duration", metavar="S", unit="s", lo=0, lo_open=True,
                                       doc="cut every case after S seconds of replay (a quick look)")
    profile: str | None = setting(None, flag="--profile", metavar="FILE",
                                  doc="as python -m sim (none: the built-in one)")
    out: str | None = setting(None, flag="--out", metavar="DIR", doc=(
        "where summary.md, summary.json and a folder per case go (none: reports/simulate-<UTC time>)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim.matrix", description=(
        "Simulate every policy on wl.txt (x1, x10, x50) and the two real traces of sim/traces/, and write one "
        "summary of whether slo meets its four goals on each."))
    add_flags(parser, MatrixOptions)  # values stay text: main() converts and checks them
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    args = cli.parse_args(parser, argv)
    if isinstance(args, int):
        return args
    command = "python -m sim.matrix " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        environ = os.environ if environ is None else environ
        options = MatrixOptions(**read_values(MatrixOptions, environ, args, error=cli.UsageError))
        out = Path(options.out) if options.out else REPO / "reports" / time.strftime("simulate-%Y%m%d-%H%M%S",
                                                                                     time.gmtime())
        run_matrix(select(options.cases), out, policies=options.policies, seed=options.seed,
                   duration_s=options.duration_s, profile=options.profile, headroom=options.headroom,
                   environ=environ, stdout=stdout, stderr=stderr, command=command.strip())
    except cli.UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=stderr)
        return 2
    return 0


def select(names: str) -> list[Case]:
    """The named cases of the default matrix, in the order named. Raises sim.cli.UsageError."""
    by_name = {c.name: c for c in DEFAULT_CASES}
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen or any(n not in by_name for n in chosen):
        raise cli.UsageError(f"--cases={names}: expected a subset of {', '.join(by_name)}")
    return [by_name[n] for n in chosen]


def case_argv(case: Case, out_dir: Path, *, policies: str, seed: int, duration_s: float | None,
              profile: str | None, headroom: float = MatrixOptions.headroom) -> list[str]:
    """The `python -m sim` command line of one case."""
    argv = ["--trace", _shown(case.trace), *case.flags, "--policies", policies, "--seed", str(seed),
            "--start", START_FIRST_NEED, "--out", _shown(out_dir)]
    if duration_s is not None:
        argv += ["--duration", f"{duration_s:g}"]
    if profile:
        argv += ["--profile", profile]
    if "--max-replicas" not in case.flags:
        argv += ["--max-replicas", str(max_replicas(case, profile, headroom))]
    return argv


def _shown(path: Path) -> str:
    """A path inside the repository relative to it (as `make simulate` runs there), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def max_replicas(case: Case, profile: str | None, headroom: float = MatrixOptions.headroom) -> int:
    """The headroom (the case's own, else `headroom`) x what the highest MAX_REPLICAS_WINDOW_S mean rate of
    the case's scaled trace needs, rounded up, at least 2."""
    flags = dict(zip(case.flags[::2], case.flags[1::2]))
    try:
        rates = load_workload(case.trace).rates_rps
        capacity = (load_profile(profile) if profile else default_profile()).capacity_within_slo_rps
    except (WorkloadError, ProfileError) as exc:
        raise cli.UsageError(f"{case.name}: {exc}") from None
    speedup = float(flags.get("--speedup", 1.0))
    rates = replay_rates(rates, int(flags["--coarse-s"]) if "--coarse-s" in flags else None)
    if "--peak-replicas" in flags:
        scale = cli.scale_for_peak_replicas(cli.peak_rate_rps(rates, speedup), int(flags["--peak-replicas"]), capacity)
    else:
        scale = float(flags.get("--scale", 1.0))
    need = cli.replicas_for_peak(cli.peak_rate_rps(rates, speedup, MAX_REPLICAS_WINDOW_S) * scale, capacity)
    factor = case.headroom if case.headroom is not None else headroom
    return max(MIN_MAX_REPLICAS, math.ceil(factor * need - 1e-9))


def run_matrix(cases: Sequence[Case], out: Path, *, policies: str = ",".join(SIM_RUNS), seed: int = 0,
               duration_s: float | None = None, profile: str | None = None, headroom: float = MatrixOptions.headroom,
               environ: Mapping[str, str] | None = None, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
               command: str = "") -> dict:
    """Run each case through sim/cli.py and write summary.md and summary.json in `out`; return the summary."""
    environ = {} if environ is None else environ
    plans = {}
    for case in cases:   # every case checked before any runs
        argv = case_argv(case, out / case.name, policies=policies, seed=seed, duration_s=duration_s,
                         profile=profile, headroom=headroom)
        try:
            plans[case.name] = (argv, cli.prepare(cli.read_options(argv), environ))
        except cli.UsageError as exc:
            raise cli.UsageError(f"{case.name}: {exc}") from None
    for name, (_, plan) in plans.items():
        for warning in plan["warnings"]:
            print(f"sim.matrix: warning: {name}: {warning}", file=stderr, flush=True)
    started = time.perf_counter()
    summary = {"command": command, "seed": seed, "policies": policies.split(","), "headroom": headroom, "goals": {
        goal: GOALS[goal][0] for goal in SIM_GOALS}, "cases": {}}
    for case in cases:
        argv, plan = plans[case.name]
        print(f"\nsim.matrix: === {case.name}: {case.what} ===", file=stdout, flush=True)
        case_started = time.perf_counter()
        outcome = cli.compare(plan, stdout)
        config = plan["settings"].config
        summary["cases"][case.name] = {
            "what": case.what, "argv": ["python", "-m", "sim", *argv], "trace": plan["trace"], "scale": plan["scale"],
            "replicas": [config.min_replicas, config.max_replicas], "slo_ms": config.slo_p95_ms,
            "headroom": case.headroom if case.headroom is not None else headroom, "warnings": plan["warnings"],
            "wall_s": round(time.perf_counter() - case_started, 1), "runs": outcome["rows"],
            "targets": outcome["targets"], "table": outcome["table"],
            "attribution": attribution_lines(outcome["results"], plan, EPOCH_UNIX_S)}
    summary["profile"] = plans[cases[0].name][1]["settings"].profile.as_dict()
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = summary_lines(summary)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(goal_table(summary) + [""] + beside_table(summary)), file=stdout)
    print(f"\nsim.matrix: {len(cases)} case(s) in {summary['wall_s']:g} s; summary: {out / 'summary.md'}",
          file=stdout)
    return summary


def goal_table(summary: dict) -> list[str]:
    """One line per case: each of slo's goals, PASS / MISS / n/a with what was measured."""
    goals = list(summary["goals"])
    lines = ["| trace | requests | replicas | " + " | ".join(SHORT.get(g, g) for g in goals) + " |",
             "|---|---:|---|" + "---|" * len(goals)]
    for name, case in summary["cases"].items():
        verdicts = {t["goal"]: t for t in case["targets"]}
        cells = [f"{verdicts[g]['verdict']}: {verdicts[g]['measured']}" if g in verdicts else "n/a" for g in goals]
        lo, hi = case["replicas"]
        lines.append(f"| {name} | {case['trace']['requests']} | {lo}..{hi} | " + " | ".join(cells) + " |")
    return lines


def beside_table(summary: dict) -> list[str]:
    """One line per case: the windows in SLO and replica-seconds of slo, the oracle and static-max (what
    was possible within the same MAX_REPLICAS); '-' where that run was not made."""
    lines = ["| trace | replicas (headroom) | " + " | ".join(f"{r} windows" for r in BESIDE) + " | "
             + " | ".join(f"{r} replica-s" for r in BESIDE) + " |",
             "|---|---|" + "---|" * len(BESIDE) + "---:|" * len(BESIDE)]
    for name, case in summary["cases"].items():
        runs = [case["runs"].get(r) for r in BESIDE]
        windows = [f"{row['windows_in_slo']:.1%} ({row['windows_met']:g}/{row['windows']:g})" if row else "-"
                   for row in runs]
        cost = [f"{row['replica_seconds']:.0f}" if row else "-" for row in runs]
        lo, hi = case["replicas"]
        lines.append(f"| {name} | {lo}..{hi} (x{case['headroom']:g}) | " + " | ".join(windows + cost) + " |")
    return lines


def summary_lines(summary: dict) -> list[str]:
    profile = summary["profile"]
    lines = ["# Simulated policy comparison (`make simulate`)", "",
             f"- command: `{summary['command'] or 'python -m sim.matrix'}`",
             f"- policies: {', '.join(summary['policies'])}; seed {summary['seed']} for every case",
             f"- profile: {profile['source']}; {profile['capacity_within_slo_rps']:g} req/s per replica within "
             f"the SLO (p95 {profile['slo_ms']:g} ms unless SLO_P95_MS was set)",
             f"- simulated in {summary['wall_s']:g} s of wall time", "",
             "## The goals of slo, per trace", ""]
    lines += [f"- {SHORT.get(g, g)}: {text.removeprefix('slo: ')}" for g, text in summary["goals"].items()]
    lines += ["", "Each cell: the verdict and what was measured (slo vs the baseline).", ""]
    lines += goal_table(summary)
    lines += ["", "## What was possible", "",
              "slo beside the oracle (which knows the future) and static-max (MAX_REPLICAS throughout), within the "
              "same replicas: MAX_REPLICAS = the headroom x what the highest 10 s mean rate needs.", ""]
    lines += beside_table(summary)
    for name, case in summary["cases"].items():
        lines += ["", f"## {name}: {case['what']}", "",
                  f"{case['trace']['requests']} requests over {case['trace']['duration_s']:g} s (x{case['scale']:g}, "
                  f"peak {case['trace']['scaled_peak_rps']:g} req/s over {case['trace']['peak_window_s']:g} s), "
                  f"{case['replicas'][0]}..{case['replicas'][1]} replicas, SLO p95 {case['slo_ms']:g} ms; "
                  f"{case['wall_s']:g} s to simulate. `{' '.join(case['argv'])}`", ""]
        lines += [f"Warning: {w}" for w in case["warnings"]] + [""] * bool(case["warnings"])
        lines += case["table"]
        if case.get("attribution"):
            lines += ["", "Where slo's replica-seconds above the oracle and its missed windows come from "
                      "(sim/attribution.py):", ""] + [f"- {line}" for line in case["attribution"]]
        lines += ["", f"![{name}]({name}/comparison.png)"]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
