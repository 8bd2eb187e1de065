"""`python -m comparison RUN_DIR|NAME=RUN_DIR ... [--out DIR]`: compare load tester runs recorded against any
deployment, with the table, targets and plot of `make compare` (comparison/recorded.py says how).

Prints the table and the targets and writes comparison.json, .csv, .md and .png. Exit status: 0 written, 2 bad
input (a directory that is no load tester run, a run without its replica series, runs of different loads).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO

from comparison.recorded import RecordedRunError, compare_recorded, parse_run_argument, read_run
from comparison.targets import target_lines
from settings import SettingError, add_flags, read_values, setting

EXIT_OK, EXIT_USAGE = 0, 2


def default_out_dir() -> Path:
    return Path("reports") / time.strftime("compare-recorded-%Y%m%d-%H%M%S", time.gmtime())


@dataclass(frozen=True)
class CompareOptions:
    out: Path = setting(default_factory=default_out_dir, flag="--out", metavar="DIR",
                        default_text="reports/compare-recorded-<UTC time>",
                        doc="where comparison.json, .csv, .md and .png go")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m comparison", description=(
        "Compare load tester runs recorded against any deployment (each run's --out directory, recorded with "
        "--prometheus): latency, windows in SLO, failures, replica-seconds and scale events from the replica "
        "series, in the table and plot of `make compare`."))
    parser.add_argument("runs", nargs="+", metavar="RUN", help=(
        "a load tester output directory, named after its folder, or NAME=DIR; a name given more than once is "
        "one run repeated (median and range). Name runs slo, hpa-50, static-min, kpa for the targets"))
    add_flags(parser, CompareOptions)
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        options = CompareOptions(**read_values(CompareOptions, {}, args, error=SettingError))
        runs = [read_run(*parse_run_argument(text)) for text in args.runs]
        try:
            options.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingError.not_allowed("--out", options.out, f"a directory that can be created ({exc.strerror})")
        outcome = compare_recorded(runs, options.out)
    except (SettingError, RecordedRunError) as exc:
        print(f"{parser.prog}: error: {exc}", file=stderr)
        return EXIT_USAGE
    for line in outcome["table"] + [""] + target_lines(outcome["targets"]) + [""] + outcome["indistinguishable"]:
        print(line, file=stdout)
    print(f"comparison: wrote comparison.json, .csv, .md and .png in {options.out}", file=stdout)
    return EXIT_OK
