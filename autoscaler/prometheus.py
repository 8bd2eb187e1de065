"""A small client of Prometheus' instant-query API that returns one float or says why it cannot.

Every outcome is a value, never an exception: the loop must keep running (and hold the replica count)
whatever Prometheus does. `QueryResult.problem` is a short, stable text used in the decision log
("connection refused", "timeout", "http 503", "status error: ...", "empty", "nan", "inf", "several
series (3)", "stale (sample 120s old)", "bad response: ...").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import requests

# Problems that mean "Prometheus itself is unreachable": after one of these the rest of a poll's
# queries are skipped, so a dead server costs one timeout per poll, not one per query.
UNREACHABLE = ("connection refused", "connection error", "timeout")


@dataclass(frozen=True)
class QueryResult:
    value: float | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unreachable(self) -> bool:
        return self.problem is not None and self.problem.startswith(UNREACHABLE)


class PrometheusClient:
    def __init__(self, base_url: str, timeout_s: float = 2.0, stale_after_s: float = 30.0,
                 session: requests.Session | None = None, clock: Callable[[], float] = time.time):
        self.url = base_url.rstrip("/") + "/api/v1/query"
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self.session = session or requests.Session()
        self.clock = clock

    def query(self, promql: str) -> QueryResult:
        at_s = self.clock()
        try:
            resp = self.session.get(self.url, params={"query": promql, "time": f"{at_s:.3f}"},
                                    timeout=self.timeout_s)
        except requests.Timeout:
            return QueryResult(None, "timeout")
        except requests.ConnectionError as exc:
            text = str(exc).lower()
            if "refused" in text:
                return QueryResult(None, "connection refused")
            if "timed out" in text:
                return QueryResult(None, "timeout")
            return QueryResult(None, "connection error")
        except requests.RequestException as exc:
            return QueryResult(None, f"request failed: {type(exc).__name__}")
        return parse_response(resp.status_code, resp.text, at_s, self.stale_after_s)


def parse_response(status_code: int, body: str, at_s: float, stale_after_s: float) -> QueryResult:
    """Interpret one /api/v1/query answer (split out so every case is testable on its own)."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if status_code != 200:
            return QueryResult(None, f"http {status_code}")
        return QueryResult(None, "bad response: not JSON")
    # Prometheus answers query errors with 400/422/503 and a JSON body naming the error.
    if doc.get("status") == "error" or status_code != 200:
        what = doc.get("errorType") or f"http {status_code}"
        detail = str(doc.get("error", ""))[:200]
        prefix = "status error" if doc.get("status") == "error" else f"http {status_code}"
        return QueryResult(None, f"{prefix}: {what}{': ' + detail if detail else ''}")
    data = doc.get("data")
    if not isinstance(data, dict):
        return QueryResult(None, "bad response: no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        sample = result
    elif kind == "vector":
        if not isinstance(result, list):
            return QueryResult(None, "bad response: vector is not a list")
        if not result:
            return QueryResult(None, "empty")
        if len(result) > 1:
            return QueryResult(None, f"several series ({len(result)})")
        sample = result[0].get("value") if isinstance(result[0], dict) else None
    else:
        return QueryResult(None, f"bad response: result type {kind!r}")
    try:
        ts, raw = float(sample[0]), sample[1]
        value = float(raw)
    except (TypeError, ValueError, IndexError):
        return QueryResult(None, "bad response: sample is not [time, value]")
    if math.isnan(value):
        return QueryResult(None, "nan")
    if math.isinf(value):
        return QueryResult(value, "inf")
    if abs(at_s - ts) > stale_after_s:
        return QueryResult(None, f"stale (sample {abs(at_s - ts):.0f}s old)")
    return QueryResult(value, None)
