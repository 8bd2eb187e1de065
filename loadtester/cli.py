"""Command line: `python loadtester/load_tester.py ...` or `python -m loadtester ...`.

Exit codes: 0 done, 1 service unreachable, 2 bad option, trace or image directory, 130 interrupted.
`python -m loadtester export-trace ...` writes a trace from Prometheus instead (loadtester/export_trace_cli.py).
"""

from __future__ import annotations

import argparse
import sys

from loadtester.config import OptionError, Options
from loadtester.http_client import UnreachableError
from loadtester.images import ImageDirError
from loadtester.workload import WorkloadError
from settings import add_flags

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="load_tester.py",
        description="Replay a workload trace (wl.txt) open-loop against the inference service and report "
                    "latency, errors, throughput and SLO attainment. With --find-capacity, measure what the "
                    "service sustains instead (load_tester.py --find-capacity --help).")
    add_flags(parser, Options)  # values stay text: Options.validate() converts and checks them
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export-trace"]:
        from loadtester.export_trace_cli import main as export_trace

        return export_trace(argv[1:])
    if "--find-capacity" in argv:
        from loadtester.capacity_cli import main as find_capacity

        return find_capacity(argv)
    args = {name: value for name, value in vars(build_parser().parse_args(argv)).items() if value is not None}
    from loadtester.runner import run  # after parsing, so --help stays quick

    try:
        options = Options(**args)
        summary = run(options)
    except (OptionError, WorkloadError, ImageDirError) as exc:
        print(f"load_tester: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnreachableError as exc:
        print(f"load_tester: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("load_tester: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_INTERRUPTED if summary["run"]["interrupted"] else EXIT_OK
