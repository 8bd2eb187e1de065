"""`python -m sim.calibrate RUN_DIR [--json FILE] [--record OUT_DIR]`: the simulator against a real
`make compare`.

RUN_DIR is a real comparison (what `make compare` writes under reports/<UTC time>/ or --out: one
`<policy>-<n>/` per run, each with run.json, loadtest/summary.json and prometheus/prometheus.yml) or a
reduced copy of one (tests/fixtures/sim-calibration/, written by `--record OUT_DIR`). For every run the
simulator is given exactly what that run had (sim/calibration/inputs.py: the same arrivals, the replica
fitted to the run's own calibration, the autoscaler's environment, the local machine's shared cores).

Then, per run and per policy (the real repeats of a policy against the one simulation of their common
inputs): replica-seconds (relative error), 10 s windows whose p95 met the SLO (real count, simulated count,
difference) and the p95 of every window (median over windows of |sim - real| / real), each against its goal
(sim/calibration/agreement.py). Prints a table; `--json FILE` writes it all. Bad input exits 2 with a
message naming the problem. The parts are sim/calibration/'s modules; this is the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence, TextIO

from sim.calibration.compare import calibrate
from sim.calibration.inputs import LOCAL_SHARED_CORE_SLOWDOWN
from sim.calibration.record import record
from sim.calibration.report import report_lines
from sim.calibration.runs import CalibrationError

PROG = "python -m sim.calibrate"


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
