"""Statistics of a replay, computed from its per-request records (live table or requests.csv).

Definitions (the same for the console, summary.json, the plot and any report built on requests.csv):
- latency percentiles are over successful ("ok") requests, measured from the scheduled time;
- a request is "under the SLO" when it succeeded within slo_ms; failed, dropped and cancelled
  requests never are;
- a window (window_s seconds of scheduled time) meets the SLO when its p95 is within slo_ms, with
  every failed request counted as infinitely slow: at least ceil(95% of its requests) succeeded
  within slo_ms. Windows in which nothing was scheduled are left out.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from loadtester.records import ERROR_KINDS, NOT_SENT, OK, RequestTable

PERCENTILES = (50, 90, 95, 99)
# A send later than this behind schedule counts as late in the summary.
LATE_SEND_MS = 10.0


def as_table(requests: RequestTable | Iterable[Mapping[str, object]]) -> RequestTable:
    return requests if isinstance(requests, RequestTable) else RequestTable.from_rows(requests)


def _percentiles(values: np.ndarray, prefix: str = "p") -> dict:
    if len(values) == 0:
        return {f"{prefix}{p}": None for p in PERCENTILES} | {"max": None, "mean": None}
    out = {f"{prefix}{p}": round(float(v), 3) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}
    out["max"] = round(float(values.max()), 3)
    out["mean"] = round(float(values.mean()), 3)
    return out


def replay_span_s(table: RequestTable) -> float:
    """Seconds from the start to the last scheduled time or response, for tables without a known length."""
    if len(table) == 0:
        return 0.0
    ends = table.scheduled_s + np.nan_to_num(table.latency_ms, nan=0.0) / 1000.0
    return float(np.nanmax(ends))


def summarize(requests: RequestTable | Iterable[Mapping[str, object]], slo_ms: float = 500.0,
              window_s: float = 10.0, duration_s: float | None = None) -> dict:
    """The summary numbers of a replay. `duration_s` is the replay's length (default: its span)."""
    table = as_table(requests)
    n = len(table)
    duration_s = float(duration_s) if duration_s else replay_span_s(table)
    ok = table.kind == OK
    n_ok = int(ok.sum())
    errors = {kind: int((table.kind == kind).sum()) for kind in ERROR_KINDS}
    not_sent = int(sum(errors[k] for k in NOT_SENT))
    latency_ok = table.latency_ms[ok & np.isfinite(table.latency_ms)]
    good = ok & (table.latency_ms <= slo_ms)

    windows = window_stats(table, slo_ms, window_s)
    considered = [w for w in windows if w["requests"] > 0]
    met = sum(1 for w in considered if w["meets_slo"])

    sent = np.isfinite(table.sent_s)
    lag_ms = table.send_lag_ms[sent]
    server = {}
    for name in ("queue", "preprocess", "model"):
        column = getattr(table, f"server_{name}_ms")[ok]
        column = column[np.isfinite(column)]
        server[name] = _percentiles(column) if len(column) else None

    return {
        "requests": {
            "scheduled": n,
            "sent": n - not_sent,
            "ok": n_ok,
            "failed": n - n_ok,
            "errors": errors,
        },
        "throughput": {
            "duration_s": round(duration_s, 3),
            "offered_rps": round(n / duration_s, 3) if duration_s > 0 else None,
            "achieved_rps": round(n_ok / duration_s, 3) if duration_s > 0 else None,
        },
        "latency_ms": _percentiles(latency_ok),
        "slo": {
            "slo_ms": slo_ms,
            "window_s": window_s,
            "windows": len(considered),
            "windows_met": met,
            "window_attainment": round(met / len(considered), 4) if considered else None,
            "requests_under_slo": int(good.sum()),
            "request_attainment": round(float(good.sum()) / n, 4) if n else None,
        },
        "sender_lag_ms": {
            "p50": round(float(np.percentile(lag_ms, 50)), 3) if len(lag_ms) else None,
            "p99": round(float(np.percentile(lag_ms, 99)), 3) if len(lag_ms) else None,
            "max": round(float(lag_ms.max()), 3) if len(lag_ms) else None,
            "late_sends": int((lag_ms > LATE_SEND_MS).sum()),
            "late_threshold_ms": LATE_SEND_MS,
        },
        "server_timing_ms": server,
    }


def window_stats(requests: RequestTable | Iterable[Mapping[str, object]], slo_ms: float = 500.0,
                 window_s: float = 10.0) -> list[dict]:
    """Per window of scheduled time: request count, error rate, ok-latency percentiles, SLO verdict."""
    table = as_table(requests)
    if len(table) == 0:
        return []
    index = np.floor(table.scheduled_s / window_s).astype(np.int64)
    n_windows = int(index.max()) + 1
    ok = table.kind == OK
    good = ok & (table.latency_ms <= slo_ms)
    counts = np.bincount(index, minlength=n_windows)
    ok_counts = np.bincount(index[ok], minlength=n_windows)
    good_counts = np.bincount(index[good], minlength=n_windows)
    # Group the ok latencies by window once (sorting), instead of scanning every request per window.
    ok_latency = ok & np.isfinite(table.latency_ms)
    order = np.argsort(index[ok_latency], kind="stable")
    grouped = table.latency_ms[ok_latency][order]
    bounds = np.searchsorted(index[ok_latency][order], np.arange(n_windows + 1))
    out = []
    for w in range(n_windows):
        count = int(counts[w])
        latency = grouped[bounds[w]:bounds[w + 1]]
        pct = np.percentile(latency, (50, 95, 99)) if len(latency) else (None, None, None)
        needed = math.ceil(0.95 * count - 1e-9)
        out.append({
            "start_s": round(w * window_s, 3),
            "requests": count,
            "ok": int(ok_counts[w]),
            "error_rate": round(1.0 - ok_counts[w] / count, 4) if count else None,
            "p50_ms": None if pct[0] is None else round(float(pct[0]), 3),
            "p95_ms": None if pct[1] is None else round(float(pct[1]), 3),
            "p99_ms": None if pct[2] is None else round(float(pct[2]), 3),
            "meets_slo": bool(count and int(good_counts[w]) >= needed),
        })
    return out


def per_second_rates(requests: RequestTable | Iterable[Mapping[str, object]],
                     duration_s: float | None = None) -> dict:
    """Offered (by scheduled time) and achieved (ok responses, by completion time) requests per second."""
    table = as_table(requests)
    span = max(duration_s or 0.0, replay_span_s(table))
    bins = max(1, math.ceil(span))
    offered = np.bincount(np.clip(table.scheduled_s, 0, bins - 1).astype(np.int64), minlength=bins)
    ok = (table.kind == OK) & np.isfinite(table.latency_ms)
    done_s = table.scheduled_s[ok] + table.latency_ms[ok] / 1000.0
    achieved = np.bincount(np.clip(done_s, 0, bins - 1).astype(np.int64), minlength=bins)
    return {"second": list(range(bins)), "offered_rps": offered.tolist(), "achieved_rps": achieved.tolist()}
