"""A small client of Prometheus' instant-query API that returns one float or says why it cannot.

Every outcome is a value (`outcomes.QueryResult`), never an exception: the loop must keep running (and
hold the replica count) whatever Prometheus does.
"""

from __future__ import annotations

import json
import math
import time
from typing import Callable

import requests

from .outcomes import Outcome, QueryResult


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
            return QueryResult(Outcome.TIMEOUT)
        except requests.ConnectionError as exc:
            text = str(exc).lower()
            if "refused" in text:
                return QueryResult(Outcome.CONNECTION_REFUSED)
            if "timed out" in text:
                return QueryResult(Outcome.TIMEOUT)
            return QueryResult(Outcome.CONNECTION_ERROR)
        except requests.RequestException as exc:
            return QueryResult(Outcome.REQUEST_FAILED, detail=type(exc).__name__)
        return parse_response(resp.status_code, resp.text, at_s, self.stale_after_s)


def parse_response(status_code: int, body: str, at_s: float, stale_after_s: float) -> QueryResult:
    """Interpret one /api/v1/query answer (split out so every case is testable on its own)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if status_code != 200:
            return QueryResult(Outcome.HTTP_ERROR, http_status=status_code)
        return QueryResult(Outcome.BAD_RESPONSE, detail="not JSON")
    # Prometheus answers query errors with 400/422/503 and a JSON body naming the error.
    if doc.get("status") == "error" or status_code != 200:
        what = doc.get("errorType") or f"http {status_code}"
        message = str(doc.get("error", ""))[:200]
        detail = f"{what}{': ' + message if message else ''}"
        if doc.get("status") == "error":
            return QueryResult(Outcome.STATUS_ERROR, detail=detail)
        return QueryResult(Outcome.HTTP_ERROR, detail=detail, http_status=status_code)
    data = doc.get("data")
    if not isinstance(data, dict):
        return QueryResult(Outcome.BAD_RESPONSE, detail="no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        sample = result
    elif kind == "vector":
        if not isinstance(result, list):
            return QueryResult(Outcome.BAD_RESPONSE, detail="vector is not a list")
        if not result:
            return QueryResult(Outcome.EMPTY)
        if len(result) > 1:
            return QueryResult(Outcome.SEVERAL_SERIES, detail=str(len(result)))
        sample = result[0].get("value") if isinstance(result[0], dict) else None
    else:
        return QueryResult(Outcome.BAD_RESPONSE, detail=f"result type {kind!r}")
    try:
        ts, raw = float(sample[0]), sample[1]
        value = float(raw)
    except (TypeError, ValueError, IndexError):
        return QueryResult(Outcome.BAD_RESPONSE, detail="sample is not [time, value]")
    if math.isnan(value):
        return QueryResult(Outcome.NAN)
    if math.isinf(value):
        return QueryResult(Outcome.INF, value)
    if abs(at_s - ts) > stale_after_s:
        return QueryResult(Outcome.STALE, detail=f"sample {abs(at_s - ts):.0f}s old")
    return QueryResult(Outcome.OK, value)
