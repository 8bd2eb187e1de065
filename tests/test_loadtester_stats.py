"""Summary statistics, SLO attainment and requests.csv, on hand-made records with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtester.records import CSV_COLUMNS, RequestTable, kind_of_status, read_requests_csv, write_requests_csv
from loadtester.stats import per_second_rates, summarize, window_stats


def row(scheduled_s, latency_ms=None, kind="ok", status=200, lag_ms=1.0, **extra):
    sent = None if kind == "dropped_client" else scheduled_s + lag_ms / 1000.0
    return {"scheduled_s": scheduled_s, "sent_s": sent, "latency_ms": latency_ms, "status": status if latency_ms else 0,
            "kind": kind, "image": "a.jpg", "trace_second": int(scheduled_s), **extra}


def test_latency_percentiles_cover_ok_requests_only():
    rows = [row(i * 0.1, latency_ms=float(i + 1)) for i in range(100)]
    rows.append(row(5.0, latency_ms=9000.0, kind="rejected_503", status=503))
    summary = summarize(rows, slo_ms=50.0, window_s=10.0)
    assert summary["latency_ms"]["p50"] == pytest.approx(50.5)
    assert summary["latency_ms"]["max"] == 100.0
    assert summary["requests"] == {"scheduled": 101, "sent": 101, "ok": 100, "failed": 1,
                                   "errors": {**{k: 0 for k in summary["requests"]["errors"]}, "rejected_503": 1}}


WINDOWS = [
    # id, rows, windows met, windows counted
    ("all-fast", [row(t, 10.0) for t in np.arange(0, 20, 0.5)], 1.0, 2),
    ("one-slow-window", [row(t, 10.0) for t in np.arange(0, 10, 0.5)] + [row(t, 900.0) for t in np.arange(10, 20, 0.5)],
     0.5, 2),
    # 20 requests in a window: 19 fast + 1 failure is exactly 95% -> met; 18 fast + 2 failures is not.
    ("failure-at-the-p95-edge", [row(t, 10.0) for t in np.arange(0, 9.5, 0.5)] + [row(9.6, 5.0, kind="timeout")],
     1.0, 1),
    ("failures-count-as-slow", [row(t, 10.0) for t in np.arange(0, 9.0, 0.5)]
     + [row(9.5, 5.0, kind="conn_refused", status=0), row(9.6, kind="dropped_client")], 0.0, 1),
    ("empty-window-left-out", [row(1.0, 10.0), row(25.0, 10.0)], 1.0, 2),
]


@pytest.mark.parametrize("rows, attainment, counted", [w[1:] for w in WINDOWS], ids=[w[0] for w in WINDOWS])
def test_window_attainment(rows, attainment, counted):
    slo = summarize(rows, slo_ms=500.0, window_s=10.0)["slo"]
    assert slo["windows"] == counted
    assert slo["window_attainment"] == attainment


def test_request_attainment_counts_every_scheduled_request():
    rows = [row(0.1, 100.0), row(0.2, 600.0), row(0.3, 50.0, kind="rejected_503", status=503),
            row(0.4, kind="dropped_client")]
    slo = summarize(rows, slo_ms=500.0)["slo"]
    assert (slo["requests_under_slo"], slo["request_attainment"]) == (1, 0.25)


def test_throughput_and_lag():
    rows = [row(i * 0.01, 20.0, lag_ms=2.0 if i < 99 else 40.0) for i in range(100)]
    summary = summarize(rows, duration_s=2.0)
    assert summary["throughput"] == {"duration_s": 2.0, "offered_rps": 50.0, "achieved_rps": 50.0}
    assert summary["sender_lag_ms"]["max"] == pytest.approx(40.0)
    assert summary["sender_lag_ms"]["late_sends"] == 1
    assert summary["requests"]["sent"] == 100


def test_per_second_rates_bin_offered_by_schedule_and_achieved_by_completion():
    rows = [row(0.1, 100.0), row(0.2, 1500.0), row(1.5, 10.0), row(1.6, 10.0, kind="http_5xx", status=500)]
    rates = per_second_rates(rows, duration_s=2.0)
    assert rates["offered_rps"] == [2, 2]
    assert rates["achieved_rps"] == [1, 2]


def test_window_stats_fields():
    windows = window_stats([row(1.0, 10.0), row(2.0, 30.0, kind="http_4xx", status=400)], window_s=5.0)
    assert windows == [{"start_s": 0.0, "requests": 2, "ok": 1, "error_rate": 0.5, "p50_ms": 10.0, "p95_ms": 10.0,
                        "p99_ms": 10.0, "meets_slo": False}]


STATUS_KINDS = [(200, "ok"), (201, "ok"), (400, "http_4xx"), (413, "http_4xx"), (500, "http_5xx"),
                (503, "rejected_503"), (504, "deadline_504"), (302, "http_other")]


@pytest.mark.parametrize("status, kind", STATUS_KINDS, ids=[str(s) for s, _ in STATUS_KINDS])
def test_status_kinds(status, kind):
    assert kind_of_status(status) == kind


def test_csv_round_trip_keeps_the_summary(tmp_path):
    rows = [row(i * 0.05, 5.0 + i, server_queue_ms=1.5, server_model_ms=20.0) for i in range(50)]
    rows += [row(3.0, 1000.0, kind="timeout", status=0), row(3.1, kind="dropped_client"), row(3.2, kind="cancelled")]
    table = RequestTable.from_rows(rows)
    path = tmp_path / "requests.csv"
    write_requests_csv(path, table)
    header = path.read_text().splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS
    back = read_requests_csv(path)
    assert summarize(back, duration_s=4.0) == summarize(table, duration_s=4.0)
    assert back.kind.tolist() == table.kind.tolist()
    assert math.isnan(back.sent_s[-2]) and back.status[-2] == 0
    assert summarize(back)["server_timing_ms"]["queue"]["p50"] == 1.5
