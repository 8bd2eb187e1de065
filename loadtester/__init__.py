"""Open-loop replay of a workload trace against the inference service.

Python API (what the command line uses):
    run(Options(...)) -> summary dict            one replay, files written to Options.out
    summarize(rows, slo_ms, window_s=10)         the summary statistics from requests.csv rows
    window_stats(rows, slo_ms, window_s=10)      per-window counts, percentiles, SLO verdicts
    per_second_rates(rows)                       offered and achieved requests per second
    read_requests_csv(path)                      requests.csv -> RequestTable
run() raises OptionError, WorkloadError, ImageDirError or UnreachableError before sending anything.
"""

from loadtester.config import OptionError, Options
from loadtester.http_client import UnreachableError
from loadtester.images import ImageDirError
from loadtester.records import RequestTable, read_requests_csv
from loadtester.stats import per_second_rates, summarize, window_stats
from loadtester.workload import WorkloadError


def run(options=None, **kwargs):
    from loadtester.runner import run as _run  # imports matplotlib and asyncio machinery only when replaying

    return _run(options, **kwargs)


__all__ = ["Options", "OptionError", "WorkloadError", "ImageDirError", "UnreachableError", "RequestTable",
           "read_requests_csv", "run", "summarize", "window_stats", "per_second_rates"]
