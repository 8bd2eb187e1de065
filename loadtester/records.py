"""One record per request: the column schema, the outcome kinds, and requests.csv on disk.

Times are seconds after the start of the replay (summary.json holds the start as a Unix time);
latency is measured from the *scheduled* time, so a late send can only make it look worse.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

OK = "ok"
# Every outcome other than OK, in the order the summary lists them.
ERROR_KINDS = (
    "rejected_503",    # the service said it is overloaded or draining (503, usually with Retry-After)
    "deadline_504",    # the service gave up on the request (504)
    "http_4xx",        # the service refused the request as bad (400, 404, 413, 415, ...)
    "http_5xx",        # any other server error
    "http_other",      # a status that is neither 2xx, 4xx nor 5xx
    "timeout",         # no complete response within --timeout
    "conn_refused",    # nothing listening (a replica going away, the service down)
    "conn_reset",      # the connection broke before the response was complete
    "conn_error",      # any other network error (unreachable host, out of sockets, ...)
    "protocol_error",  # an answer that is not valid HTTP
    "dropped_client",  # not sent: --max-inflight requests were already in flight
    "cancelled",       # still in flight when the run was interrupted
    "client_error",    # an unexpected failure in the load tester itself (reported, never fatal)
)
KINDS = (OK,) + ERROR_KINDS
NOT_SENT = ("dropped_client",)

CSV_COLUMNS = ("request_id", "trace_second", "image", "scheduled_s", "sent_s", "send_lag_ms", "latency_ms",
               "service_ms", "status", "kind", "server_queue_ms", "server_preprocess_ms", "server_model_ms")
SERVER_TIMINGS = ("queue", "preprocess", "model")


def kind_of_status(status: int) -> str:
    if 200 <= status < 300:
        return OK
    if status == 503:
        return "rejected_503"
    if status == 504:
        return "deadline_504"
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "http_other"


@dataclass
class RequestTable:
    """Columns of equal length, one entry per scheduled request; NaN where a value does not exist."""

    trace_second: np.ndarray    # int
    image: np.ndarray           # str (object)
    scheduled_s: np.ndarray     # float
    sent_s: np.ndarray          # float, NaN when not sent
    latency_ms: np.ndarray      # float, scheduled -> end of response (or error), NaN when not sent/cancelled
    service_ms: np.ndarray      # float, sent -> end of response (or error)
    status: np.ndarray          # int, 0 when there was no HTTP response
    kind: np.ndarray            # str (object), one of KINDS
    server_queue_ms: np.ndarray
    server_preprocess_ms: np.ndarray
    server_model_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.scheduled_s)

    @property
    def send_lag_ms(self) -> np.ndarray:
        return (self.sent_s - self.scheduled_s) * 1000.0

    @classmethod
    def empty(cls, n: int) -> "RequestTable":
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        return cls(trace_second=np.zeros(n, np.int64), image=np.full(n, "", object), scheduled_s=nan(),
                   sent_s=nan(), latency_ms=nan(), service_ms=nan(), status=np.zeros(n, np.int64),
                   kind=np.full(n, "", object), server_queue_ms=nan(), server_preprocess_ms=nan(),
                   server_model_ms=nan())

    def subset(self, mask: np.ndarray) -> "RequestTable":
        return RequestTable(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def quantized(self) -> "RequestTable":
        """Values rounded exactly as requests.csv stores them, so statistics computed before writing
        and after reading the file agree to the last digit."""
        def q(column: np.ndarray, digits: int) -> np.ndarray:
            return np.fromiter((float(f"{v:.{digits}f}") for v in column), np.float64, len(column))

        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("scheduled_s", "sent_s"):
            values[name] = q(values[name], 6)
        for name in ("latency_ms", "service_ms", "server_queue_ms", "server_preprocess_ms", "server_model_ms"):
            values[name] = q(values[name], 3)
        return RequestTable(**values)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> "RequestTable":
        """From dicts keyed like requests.csv (strings as csv.DictReader gives, or numbers)."""
        rows = list(rows)
        table = cls.empty(len(rows))
        for i, row in enumerate(rows):
            table.trace_second[i] = int(_num(row.get("trace_second"), 0))
            table.image[i] = str(row.get("image") or "")
            table.scheduled_s[i] = _num(row.get("scheduled_s"))
            table.sent_s[i] = _num(row.get("sent_s"))
            table.latency_ms[i] = _num(row.get("latency_ms"))
            table.service_ms[i] = _num(row.get("service_ms"))
            table.status[i] = int(_num(row.get("status"), 0))
            table.kind[i] = str(row.get("kind") or "")
            table.server_queue_ms[i] = _num(row.get("server_queue_ms"))
            table.server_preprocess_ms[i] = _num(row.get("server_preprocess_ms"))
            table.server_model_ms[i] = _num(row.get("server_model_ms"))
        return table


def _num(value: object, default: float = math.nan) -> float:
    if value is None or value == "":
        return default
    return float(value)


def _cell(value: float, digits: int) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def write_requests_csv(path: Path, table: RequestTable) -> None:
    lag = table.send_lag_ms
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for i in range(len(table)):
            out.writerow((i, int(table.trace_second[i]), table.image[i], _cell(table.scheduled_s[i], 6),
                          _cell(table.sent_s[i], 6), _cell(lag[i], 3), _cell(table.latency_ms[i], 3),
                          _cell(table.service_ms[i], 3), int(table.status[i]) or "", table.kind[i],
                          _cell(table.server_queue_ms[i], 3), _cell(table.server_preprocess_ms[i], 3),
                          _cell(table.server_model_ms[i], 3)))


def read_requests_csv(path: str | Path) -> RequestTable:
    with open(path, newline="") as fh:
        return RequestTable.from_rows(csv.DictReader(fh))
