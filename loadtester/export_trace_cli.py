"""`python -m loadtester export-trace --prometheus URL --since 24h --out FILE`: a cluster's request rate as
Prometheus recorded it, written as a trace the load tester replays (loadtester/export_trace.py says how).

Exit codes: 0 written, 1 Prometheus unreachable or failing, or no data in the range, 2 bad option or a query
that cannot give a trace (refused by Prometheus, several series, negative rates), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import requests

from loadtester.config import OptionError, check_file_target, check_url, option_like
from loadtester.export_trace import (DEFAULT_QUERY, GAP_FILLS, MAX_RANGE_S, ExportError, Range, comments,
                                     chunks, fill_gaps, iso_utc, parse_duration_s, parse_time_s, per_second,
                                     plan_range, promql_for, step_rates)
from loadtester.prometheus import PrometheusError, query_range
from loadtester.workload import format_workload, parse_workload
from settings import add_flags, read_values, setting

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


@dataclass(frozen=True)
class ExportOptions:
    out: Path = setting(flag="--out", metavar="FILE", doc="the trace to write, in the wl.txt format")
    prometheus: str = setting(DEFAULT_PROMETHEUS, flag="--prometheus", metavar="URL", doc="Prometheus base URL")
    since: str = setting("1h", flag="--since", metavar="DURATION", doc=(
        f"how much history to export, up to --end: 30m, 24h, 1h30m, 2d (at most {MAX_RANGE_S // 86400}d)"))
    start: str | None = setting(None, flag="--start", metavar="TIME", default_text="--end less --since", doc=(
        "start of the range instead of --since: unix seconds or ISO 8601 (UTC unless it names a zone)"))
    end: str | None = setting(None, flag="--end", metavar="TIME", default_text="now", doc=(
        "end of the range: unix seconds or ISO 8601"))
    step_s: int = setting(5, flag="--step-s", metavar="S", unit="s", lo=1, hi=3600, doc=(
        "one rate per step of this many seconds (every second of a step gets it); at least the scrape interval"))
    scrape_interval_s: float = setting(2.0, flag="--scrape-interval-s", metavar="S", unit="s", lo=0, hi=3600,
                                       lo_open=True, doc=(
                                           "how often Prometheus scrapes the service (prometheus/prometheus.yml: "
                                           "2 s); the query's window is the step plus this"))
    query: str = setting(DEFAULT_QUERY, flag="--query", metavar="PROMQL", doc=(
        "PromQL giving the cluster's requests per second as one series; $window stands for the step plus one "
        "scrape interval, less 1 ms"))
    gaps: str = setting(GAP_FILLS[0], flag="--gaps", choices=GAP_FILLS, doc=(
        "steps without data: interpolate (a straight line between the steps around them; none kept before the "
        "first or after the last step with data) or zero"))
    timeout_s: float = option_like("timeout_s", doc="time-out of each request to Prometheus")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtester export-trace",
        description="Write a cluster's request-rate history, read from Prometheus, as a workload trace (the "
                    "wl.txt format) that the load tester replays. The file's comments say which query, step "
                    "and range it holds and which steps had no data.")
    add_flags(parser, ExportOptions)  # values stay text: read_options() converts and checks them
    return parser


def read_options(argv: list[str] | None, now_s: float) -> tuple[ExportOptions, Range]:
    """The flags, converted and checked, and the range they ask for; raises OptionError (argparse exits 2 on
    a malformed command line)."""
    values = read_values(ExportOptions, {}, build_parser().parse_args(argv), error=OptionError)
    options = ExportOptions(**values)
    check_file_target("--out", options.out)
    try:
        since_s = parse_duration_s(options.since)
        if since_s > MAX_RANGE_S:
            raise ValueError(options.since)
    except ValueError:
        raise OptionError.not_allowed("--since", options.since, "a duration such as 30m, 24h or 1h30m, at most "
                                      f"{MAX_RANGE_S // 86400}d") from None
    if "start" in values and "since" in values:
        raise OptionError("--start and --since both set the start of the range: give one")
    end_s = _time("--end", options.end) if options.end is not None else now_s
    start_s = _time("--start", options.start) if options.start is not None else end_s - since_s
    if options.step_s < options.scrape_interval_s:
        raise OptionError.not_allowed("--step-s", options.step_s,
                                      f"at least --scrape-interval-s ({options.scrape_interval_s:g} s): a step "
                                      "shorter than the scrape interval cannot be measured")
    try:
        rng = plan_range(start_s, end_s, options.step_s)
    except ValueError as exc:
        raise OptionError(f"--start/--end/--since: {exc}") from None
    return replace(options, prometheus=check_url(options.prometheus, option="--prometheus")), rng


def _time(flag: str, text: str) -> float:
    try:
        return parse_time_s(text)
    except ValueError:
        raise OptionError.not_allowed(flag, text, "unix seconds or an ISO 8601 time, e.g. 2026-01-31T09:00:00Z") \
            from None


def main(argv: list[str] | None = None) -> int:
    try:
        options, rng = read_options(argv, now_s=time.time())
    except OptionError as exc:
        return _fail(exc, EXIT_USAGE)
    promql = promql_for(options.query, options.step_s, options.scrape_interval_s)
    try:
        with requests.Session() as session:
            answers = [query_range(options.prometheus, promql, first, last, options.step_s, options.timeout_s,
                                   session) for first, last in chunks(rng)]
        rates, nan_points = step_rates(answers, rng)
        filled = fill_gaps(rates, options.gaps, widen=options.step_s > options.scrape_interval_s)
    except PrometheusError as exc:
        if exc.kind == "unreachable":
            return _fail(exc, EXIT_FAILED)
        if exc.kind == "bad_query":
            return _fail(f"Prometheus refused the query {promql!r}: {exc}", EXIT_USAGE)
        return _fail(f"the query {promql!r} failed: {exc}", EXIT_FAILED)
    except ExportError as exc:
        where = f"from {iso_utc(rng.start_s)} to {iso_utc(rng.end_s)} at {options.prometheus}"
        return _fail(f"the query {promql!r} {where}: {exc}", EXIT_USAGE if exc.kind == "bad_query" else EXIT_FAILED)
    except KeyboardInterrupt:
        print("export-trace: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    header = comments(filled, rng, prometheus_url=options.prometheus, promql=promql, query=options.query,
                      scrape_interval_s=options.scrape_interval_s, fill=options.gaps, nan_points=nan_points)
    text = format_workload(per_second(filled, rng.step_s), header)
    trace = parse_workload(text, source=str(options.out))  # what the load tester will read
    try:
        options.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        return _fail(f"--out={str(options.out)!r}: cannot write it ({exc.strerror})", EXIT_USAGE)
    if filled.filled_steps * 2 > len(filled.rates):
        print(f"export-trace: warning: {filled.filled_steps} of {len(filled.rates)} steps had no data; is "
              f"--scrape-interval-s={options.scrape_interval_s:g} this Prometheus' scrape interval?", file=sys.stderr)
    print(f"wrote {options.out}: {trace.duration_s} s, {trace.total_requests:.0f} requests, step {rng.step_s} s, "
          f"{filled.filled_steps * rng.step_s} s of gaps filled")
    return EXIT_OK


def _fail(message: object, code: int) -> int:
    print(f"export-trace: error: {message}", file=sys.stderr)
    return code
