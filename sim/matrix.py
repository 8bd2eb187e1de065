"""`python -m sim.matrix` (`make simulate`): every policy on several traces, and one summary of the goals.

The default matrix: wl.txt at x1, x10 and x50, and the two real traces of sim/traces/ (the Twitter hour
and the NASA day), each scaled with --peak-replicas so that its peak needs tens of replicas; every policy
(planning/runs.py SIM_RUNS), the same seed. Each case is one `python -m sim` comparison (sim/cli.py: the same
checks, the same comparison/ table, targets and plot) written to its own folder; then summary.md and
summary.json say, per trace, whether `slo` met each of the four goals (comparison/targets.py SIM_GOALS):

- >= 99% of 10 s windows within the SLO;
- >= 25% fewer replica-seconds than hpa-50;
- fewer SLO-missing windows than kpa at equal or fewer replica-seconds;
- within 1.3x of the oracle's replica-seconds.

The NASA day is replayed 24x faster (`--speedup 24`: the day in one hour; each replayed second sums 24
of the log's, so the shape is the day's and the per-second noise is not that of a 1 req/s log scaled up
500-fold): at its own pace the whole day is 45 M requests per policy, an hour of CPU for the matrix.
Every case gets MAX_REPLICAS = the replicas that the highest 10 s mean rate of its scaled trace needs
(counted as --peak-replicas counts them, at least 2): --peak-replicas sizes a peak by its 60 s mean, and
MAX_REPLICAS at that would leave no policy, not even static-max or the oracle, able to hold the SLO through
a burst shorter than that (wl.txt's lasts 45 s; the real traces' are shorter still) in an SLO window.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from comparison.targets import GOALS, SIM_GOALS
from loadtester.workload import WorkloadError, load_workload
from settings import add_flags, read_values, setting
from sim import cli
from sim.profile import ProfileError, default_profile
from sim.profile_sources import load_profile
from planning.runs import SIM_RUNS

REPO = Path(__file__).resolve().parent.parent
TRACES = Path(__file__).resolve().parent / "traces"


@dataclass(frozen=True)
class Case:
    """One trace of the matrix and the `python -m sim` flags that shape it."""

    name: str               # the folder it writes, and its row in the summary
    trace: Path
    flags: tuple[str, ...]  # --scale or --peak-replicas, and any --speedup / --duration
    what: str               # one line for the summary


DEFAULT_CASES = (
    Case("wl-x1", REPO / "wl.txt", ("--scale", "1"), "wl.txt x1 (300 s)"),
    Case("wl-x10", REPO / "wl.txt", ("--scale", "10"), "wl.txt x10 (300 s)"),
    Case("wl-x50", REPO / "wl.txt", ("--scale", "50"), "wl.txt x50 (300 s)"),
    Case("twitter-1h", TRACES / "twitter-1h.txt", ("--peak-replicas", "50"),
         "sim/traces/twitter-1h.txt, its peak at 50 replicas (1 h)"),
    Case("nasa-1d", TRACES / "nasa-1d.txt", ("--peak-replicas", "30", "--speedup", "24"),
         "sim/traces/nasa-1d.txt 24x faster (the day in 1 h), its peak at 30 replicas"),
)
SHORT = {"windows": ">= 99% windows in SLO", "cost_vs_hpa_50": ">= 25% cheaper than hpa-50",
         "beats_kpa": "beats kpa", "near_oracle": "<= 1.3x oracle"}
MIN_MAX_REPLICAS = 2
MAX_REPLICAS_WINDOW_S = 10.0   # the SLO's window


@dataclass(frozen=True)
class MatrixOptions:
    """The flags of `python -m sim.matrix`; each case passes them on to `python -m sim`."""

    cases: str = setting(",".join(c.name for c in DEFAULT_CASES), flag="--cases", metavar="LIST",
                         doc="comma-separated subset of the matrix, run in the order named")
    policies: str = setting(",".join(SIM_RUNS), flag="--policies", metavar="LIST", doc="as python -m sim")
    seed: int = setting(0, flag="--seed", metavar="N", lo=0, doc="the same for every case")
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
        options = MatrixOptions(**read_values(MatrixOptions, {}, args, error=cli.UsageError))
        out = Path(options.out) if options.out else REPO / "reports" / time.strftime("simulate-%Y%m%d-%H%M%S",
                                                                                     time.gmtime())
        run_matrix(select(options.cases), out, policies=options.policies, seed=options.seed,
                   duration_s=options.duration_s, profile=options.profile,
                   environ=os.environ if environ is None else environ, stdout=stdout, command=command.strip())
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
              profile: str | None) -> list[str]:
    """The `python -m sim` command line of one case."""
    argv = ["--trace", _shown(case.trace), *case.flags, "--policies", policies, "--seed", str(seed),
            "--out", _shown(out_dir)]
    if duration_s is not None:
        argv += ["--duration", f"{duration_s:g}"]
    if profile:
        argv += ["--profile", profile]
    if "--max-replicas" not in case.flags:
        argv += ["--max-replicas", str(max_replicas(case, profile))]
    return argv


def _shown(path: Path) -> str:
    """A path inside the repository relative to it (as `make simulate` runs there), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def max_replicas(case: Case, profile: str | None) -> int:
    """What the highest MAX_REPLICAS_WINDOW_S mean rate of the case's scaled trace needs, at least 2."""
    flags = dict(zip(case.flags[::2], case.flags[1::2]))
    try:
        rates = load_workload(case.trace).rates_rps
        capacity = (load_profile(profile) if profile else default_profile()).capacity_within_slo_rps
    except (WorkloadError, ProfileError) as exc:
        raise cli.UsageError(f"{case.name}: {exc}") from None
    speedup = float(flags.get("--speedup", 1.0))
    if "--peak-replicas" in flags:
        scale = cli.scale_for_peak_replicas(cli.peak_rate_rps(rates, speedup), int(flags["--peak-replicas"]), capacity)
    else:
        scale = float(flags.get("--scale", 1.0))
    peak = cli.peak_rate_rps(rates, speedup, MAX_REPLICAS_WINDOW_S) * scale
    return max(MIN_MAX_REPLICAS, cli.replicas_for_peak(peak, capacity))


def run_matrix(cases: Sequence[Case], out: Path, *, policies: str = ",".join(SIM_RUNS), seed: int = 0,
               duration_s: float | None = None, profile: str | None = None,
               environ: Mapping[str, str] | None = None, stdout: TextIO = sys.stdout, command: str = "") -> dict:
    """Run each case through sim/cli.py and write summary.md and summary.json in `out`; return the summary."""
    environ = {} if environ is None else environ
    plans = {}
    for case in cases:   # every case checked before any runs
        argv = case_argv(case, out / case.name, policies=policies, seed=seed, duration_s=duration_s,
                         profile=profile)
        try:
            plans[case.name] = (argv, cli.prepare(cli.read_options(argv), environ))
        except cli.UsageError as exc:
            raise cli.UsageError(f"{case.name}: {exc}") from None
    started = time.perf_counter()
    summary = {"command": command, "seed": seed, "policies": policies.split(","), "goals": {
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
            "wall_s": round(time.perf_counter() - case_started, 1), "runs": outcome["rows"],
            "targets": outcome["targets"], "table": outcome["table"]}
    summary["profile"] = plans[cases[0].name][1]["settings"].profile.as_dict()
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = summary_lines(summary)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(goal_table(summary)), file=stdout)
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
    for name, case in summary["cases"].items():
        lines += ["", f"## {name}: {case['what']}", "",
                  f"{case['trace']['requests']} requests over {case['trace']['duration_s']:g} s (x{case['scale']:g}, "
                  f"peak {case['trace']['scaled_peak_rps']:g} req/s over {case['trace']['peak_window_s']:g} s), "
                  f"{case['replicas'][0]}..{case['replicas'][1]} replicas, SLO p95 {case['slo_ms']:g} ms; "
                  f"{case['wall_s']:g} s to simulate. `{' '.join(case['argv'])}`", ""]
        lines += case["table"] + ["", f"![{name}]({name}/comparison.png)"]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
