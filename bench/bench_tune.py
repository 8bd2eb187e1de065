"""Benchmark: what `python -m sim tune` costs. Requirement: a one-hour trace tunes in under 5 minutes on one core.

The case is one of `make simulate`'s real traces, sized as the matrix sizes it (sim/matrix.py: its
--peak-replicas and --speedup, MAX_REPLICAS from its highest 10 s mean), with the SLO of the built-in profile;
by default the Twitter hour. The process is pinned to one core for the whole tune. Measured: wall and CPU
time, the simulated runs (trials on the tuned part, runs on the held-out part) and the held-out goals. The
budget is judged on the CPU time: pinned, that is the time the tune takes on a core of its own, while the
wall time also counts whatever else ran on that core meanwhile (the load average is recorded beside it).

    python -m bench.bench_tune [--case twitter-1h|nasa-1d]

Results go to the console, bench/results/tune-<case>.json and the tune's own files (autoscaler.env,
tune.json) to bench/results/tune-<case>/.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

from bench.service_pinned import pinned
from local.machine import cpu_model
from processes.children import REPO
from sim import matrix
from sim.profile import default_profile
from sim.tune_cli import main as tune

BUDGET_S = 300.0
CASES = ("twitter-1h", "nasa-1d")


def tune_argv(case: matrix.Case, out: str) -> list[str]:
    """The `python -m sim tune` flags of a matrix case."""
    return ["--trace", str(case.trace.relative_to(REPO)), *case.flags, "--max-replicas",
            str(matrix.max_replicas(case, None)), "--slo-ms", f"{default_profile().slo_ms:g}", "--out", out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default=CASES[0], choices=CASES)
    args = parser.parse_args(argv)
    case = matrix.select(args.case)[0]
    results = REPO / "bench" / "results"
    out = results / f"tune-{case.name}"
    flags = tune_argv(case, str(out.relative_to(REPO)))
    core = min(os.sched_getaffinity(0))
    print(f"python -m sim tune {' '.join(flags)}  (pinned to core {core})", flush=True)
    printed = io.StringIO()
    started, cpu_started = time.perf_counter(), time.process_time()
    with pinned({core}):
        code = tune(flags, environ={}, stdout=printed)
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    print(printed.getvalue(), end="")
    if code != 0:
        return code
    report = json.loads((out / "tune.json").read_text())
    trials = {policy: len(search["trials"]) for policy, search in report["searches"].items()}
    held_out_runs = sum(line.startswith("tune: held out:") for line in printed.getvalue().splitlines())
    ok = cpu_s < BUDGET_S
    row = {"case": case.name, "argv": ["python", "-m", "sim", "tune", *flags], "machine": cpu_model(),
           "cpus": os.cpu_count(), "pinned_core": core, "load_average": list(os.getloadavg()),
           "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1), "budget_s": BUDGET_S, "passed": ok,
           "requests": report["trace"]["requests"], "replay_s": report["trace"]["duration_s"],
           "trials": trials, "held_out_runs": held_out_runs, "goals": report["goals"]}
    print(f"tune of {case.name}: {cpu_s:.0f} s CPU on one core ({wall_s:.0f} s wall, 5-min load average "
          f"{row['load_average'][1]:.1f}), {sum(trials.values())} trials "
          f"({', '.join(f'{p} {n}' for p, n in trials.items())}) + {row['held_out_runs']} held-out runs - "
          f"{'PASS' if ok else 'MISS'} (< {BUDGET_S:g} s of CPU)", flush=True)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"tune-{case.name}.json").write_text(json.dumps(row, indent=1) + "\n")
    print(f"results: {results / f'tune-{case.name}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
