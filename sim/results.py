"""One policy's numbers from a simulated run, defined as the local stack's comparison defines them.

The per-request outcomes become a loadtester RequestTable, so latency percentiles (over ok requests),
failures and the share of 10 s windows whose p95 is within the SLO (failed requests counted as too slow)
are loadtester.stats.summarize's; scale events, reversals and replica-seconds (warmed-up replicas
integrated over the replay) are local/analysis.py's, over the decision lines the autoscaler's own loop
wrote. Nothing is recomputed differently here.
"""

from __future__ import annotations

import numpy as np

from loadtester.records import RequestTable
from loadtester.stats import summarize, window_stats
from local.analysis import integrate_steps, reversals, scale_events
from sim.replica import DEADLINE_504, LOST, OK, OUTCOME_KINDS, PENDING, REJECTED_503

ROW_KEYS = ("requests", "failed", "p50_ms", "p95_ms", "p99_ms", "windows_in_slo", "replica_seconds",
            "scale_events", "reversals")
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


def summarize_run(table: RequestTable, decisions: list[dict], ready_timeline: list[list[float]],
                  slo_ms: float, duration_s: float, start_unix_s: float) -> dict:
    """The comparison row (ROW_KEYS) of one run, plus what its plot needs."""
    summary = summarize(table, slo_ms=slo_ms, window_s=WINDOW_S, duration_s=duration_s)
    events = scale_events(decisions, start_unix_s)
    latency = summary["latency_ms"]
    row = {
        "requests": summary["requests"]["scheduled"],
        "failed": summary["requests"]["failed"],
        "p50_ms": latency["p50"], "p95_ms": latency["p95"], "p99_ms": latency["p99"],
        "windows_in_slo": summary["slo"]["window_attainment"],
        "replica_seconds": round(integrate_steps(ready_timeline, 0.0, duration_s), 1),
        "scale_events": len(events),
        "reversals": reversals(events),
    }
    return {"row": row, "errors": summary["requests"]["errors"], "events": events,
            "windows": window_stats(table, slo_ms, WINDOW_S)}
