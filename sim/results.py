"""One policy's numbers from a simulated run, defined as the local stack's comparison defines them.

The per-request outcomes become a loadtester RequestTable, so latency percentiles (over ok requests),
failures, the share of 10 s windows whose p95 is within the SLO (failed requests counted as too slow) and
the per-second rates are loadtester.stats'; scale events, reversals, replica-seconds (warmed-up replicas
integrated over the replay) and the comparison row are comparison/'s, over the decision lines the
autoscaler's own loop wrote. Nothing is recomputed differently here.
"""

from __future__ import annotations

import numpy as np

from comparison.summary import run_figures
from comparison.table import row_of
from loadtester.records import RequestTable
from loadtester.stats import per_second_rates, summarize, window_stats
from sim.replica import DEADLINE_504, LOST, OK, OUTCOME_KINDS, PENDING, REJECTED_503

WINDOW_S = 10.0
_STATUS = {OK: 200, REJECTED_503: 503, DEADLINE_504: 504, LOST: 0}


def request_table(scheduled_s: np.ndarray, trace_second: np.ndarray, code: np.ndarray,
                  latency_s: np.ndarray) -> RequestTable:
    """The outcomes in the load tester's columns (a request is sent when scheduled: no client lag)."""
    if (code == PENDING).any():
        raise ValueError(f"{int((code == PENDING).sum())} requests have no outcome; the run did not finish")
    n = len(scheduled_s)
    kinds = np.array(OUTCOME_KINDS, dtype=object)
    statuses = np.array([_STATUS[k] for k in range(len(OUTCOME_KINDS))], dtype=np.int64)
    latency_ms = latency_s * 1000.0
    nan = np.full(n, np.nan)
    return RequestTable(trace_second=trace_second.astype(np.int64), image=np.full(n, "", dtype=object),
                        scheduled_s=scheduled_s, sent_s=scheduled_s, latency_ms=latency_ms, service_ms=latency_ms,
                        status=statuses[code], kind=kinds[code], server_queue_ms=nan, server_preprocess_ms=nan,
                        server_model_ms=nan)


def summarize_run(name: str, policy: str, table: RequestTable, decisions: list[dict], replicas: dict,
                  slo_ms: float, duration_s: float, start_unix_s: float) -> dict:
    """comparison.summary.run_figures of one run (what the plots read) with its comparison row under "row".
    `replicas`: {"workers": [[t, ready], ...], "desired": [[t, target], ...]}."""
    summary = summarize(table, slo_ms=slo_ms, window_s=WINDOW_S, duration_s=duration_s)
    summary["windows"] = window_stats(table, slo_ms, WINDOW_S)
    summary["per_second"] = per_second_rates(table, duration_s=duration_s)
    result = run_figures(summary, decisions, replicas, start_unix_s, duration_s, workers_source="simulated cluster")
    result["row"] = row_of(name, policy, result)
    return result
