"""The Prometheus client and the collector, one case per outcome of a query.

The client talks real HTTP to a local server that answers /api/v1/query with canned bodies (the edge
cases a healthy Prometheus rarely produces on demand); the default queries against a real Prometheus
are in test_autoscaler_stack.py.
"""

from __future__ import annotations

import json
import math
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest

from autoscaler.collector import PrometheusSource
from autoscaler.config import Config
from autoscaler.prometheus import PrometheusClient, QueryResult
from tests.support import LocalHTTPServer, free_port

NOW = 1_800_000_000.0


def vector(*values, ts=NOW):
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"i": str(i)}, "value": [ts, v]} for i, v in enumerate(values)]}})


class CannedPrometheus(LocalHTTPServer):
    """/api/v1/query answering (status, body, delay_s) from `self.answer`; records every request."""

    def __init__(self):
        self.answer = (200, vector("1"), 0.0)
        self.requests: list[dict] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                canned.requests.append({"path": url.path, **{k: v[0] for k, v in parse_qs(url.query).items()}})
                status, body, delay = canned.answer
                if delay:
                    time.sleep(delay)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


@pytest.fixture
def canned():
    server = CannedPrometheus()
    yield server
    server.close()


CASES = {
    "one-series": ((200, vector("12.5")), QueryResult(12.5)),
    "scalar": ((200, json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [NOW, "3"]}})),
               QueryResult(3.0)),
    "empty-vector": ((200, vector()), QueryResult(None, "empty")),
    "several-series": ((200, vector("1", "2", "3")), QueryResult(None, "several series (3)")),
    "nan": ((200, vector("NaN")), QueryResult(None, "nan")),
    "plus-inf": ((200, vector("+Inf")), QueryResult(math.inf, "inf")),
    "stale-sample": ((200, vector("5", ts=NOW - 120)), QueryResult(None, "stale (sample 120s old)")),
    "status-error": ((400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})),
                     QueryResult(None, "status error: bad_data: parse error at char 5")),
    "http-503-not-json": ((503, "Service Unavailable"), QueryResult(None, "http 503")),
    "http-500-json-without-status": ((500, json.dumps({"oops": 1})), QueryResult(None, "http 500: http 500")),
    "not-json": ((200, "<html>proxy login</html>"), QueryResult(None, "bad response: not JSON")),
    "matrix": ((200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})),
               QueryResult(None, "bad response: result type 'matrix'")),
    "garbled-sample": ((200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": ["x"]}]}})), QueryResult(None, "bad response: sample is not [time, value]")),
}


@pytest.mark.parametrize("answer,expected", CASES.values(), ids=CASES.keys())
def test_query_outcomes(canned, answer, expected):
    canned.answer = (*answer, 0.0)
    client = PrometheusClient(canned.url, timeout_s=5, stale_after_s=30, clock=lambda: NOW)
    assert client.query("up") == expected
    assert canned.requests[-1] == {"path": "/api/v1/query", "query": "up", "time": f"{NOW:.3f}"}


def test_timeout(canned):
    canned.answer = (200, vector("1"), 2.0)
    result = PrometheusClient(canned.url, timeout_s=0.3, clock=lambda: NOW).query("up")
    assert result == QueryResult(None, "timeout") and result.unreachable


def test_connection_refused():
    result = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=2).query("up")
    assert result == QueryResult(None, "connection refused") and result.unreachable


# --- the collector: what each outcome means for the poll --------------------------------------------

class ScriptedQuerier:
    """Answers each query from a table keyed by a fragment of its PromQL."""

    def __init__(self, answers: dict[str, QueryResult]):
        self.answers = answers
        self.asked: list[str] = []

    def query(self, promql: str) -> QueryResult:
        self.asked.append(promql)
        for fragment, result in self.answers.items():
            if fragment in promql:
                return result
        raise AssertionError(f"unexpected query {promql}")


HEALTHY = {"timestamp(": QueryResult(2.0), "inference_requests_total": QueryResult(8.0),
           "histogram_quantile": QueryResult(0.25), "inflight": QueryResult(1.5),
           "queue_depth": QueryResult(0.0), "cpu_seconds": QueryResult(0.9)}


def collect(**changes):
    answers = dict(HEALTHY)
    answers.update(changes)
    querier = ScriptedQuerier(answers)
    return PrometheusSource(querier, Config(scaler="dry-run")).collect(), querier


def test_collector_healthy():
    m, _ = collect()
    assert (m.rate_rps, m.p95_ms, m.inflight, m.queue_depth, m.cpu_cores, m.problem, m.errors) == (
        8.0, 250.0, 1.5, 0.0, 0.9, None, ())


COLLECTOR_CASES = {
    "refused-stops-the-poll": ({"timestamp(": QueryResult(None, "connection refused")},
                               "prometheus: connection refused", 1),
    "timeout-mid-poll-stops-it": ({"histogram_quantile": QueryResult(None, "timeout")}, "prometheus: timeout", 3),
    "stale-data": ({"timestamp(": QueryResult(95.0)}, "stale: newest sample 95s old", 1),
    "no-series-for-job": ({"timestamp(": QueryResult(None, "empty"),
                           "inference_requests_total": QueryResult(None, "empty"),
                           "inflight": QueryResult(None, "empty")}, "no series from job resnet18-inference", 6),
}


@pytest.mark.parametrize("changes,problem,queries", COLLECTOR_CASES.values(), ids=COLLECTOR_CASES.keys())
def test_collector_poll_level_problems(changes, problem, queries):
    m, querier = collect(**changes)
    assert m.problem == problem and m.rate_rps is None
    assert len(querier.asked) == queries


INPUT_CASES = {
    # A failed scrape stales the series at once (empty age) while the windows still hold samples.
    "age-empty-windows-still-decide": ({"timestamp(": QueryResult(None, "empty")}, "rate_rps", 8.0,
                                       (("age_s", "empty"),)),
    "idle-p95-nan-is-not-an-error": ({"histogram_quantile": QueryResult(None, "nan")}, "p95_ms", None, ()),
    "p95-in-inf-bucket-is-kept": ({"histogram_quantile": QueryResult(math.inf, "inf")}, "p95_ms", math.inf, ()),
    "empty-rate": ({"inference_requests_total": QueryResult(None, "empty")}, "rate_rps", None,
                   (("rate_rps", "empty"),)),
    "several-series-cpu": ({"cpu_seconds": QueryResult(None, "several series (2)")}, "cpu_cores", None,
                           (("cpu_cores", "several series (2)"),)),
    "status-error-inflight": ({"inflight": QueryResult(None, "status error: bad_data")}, "inflight", None,
                              (("inflight", "status error: bad_data"),)),
    # Not measurements: each is refused as unknown, never fed to the demand.
    "negative-rate": ({"inference_requests_total": QueryResult(-50.0)}, "rate_rps", None,
                      (("rate_rps", "negative (-50)"),)),
    "negative-inflight": ({"inflight": QueryResult(-1.5)}, "inflight", None, (("inflight", "negative (-1.5)"),)),
    "negative-cpu": ({"cpu_seconds": QueryResult(-0.5)}, "cpu_cores", None, (("cpu_cores", "negative (-0.5)"),)),
    "negative-queue": ({"queue_depth": QueryResult(-3.0)}, "queue_depth", None, (("queue", "negative (-3)"),)),
    "negative-p95": ({"histogram_quantile": QueryResult(-0.1)}, "p95_ms", None, (("p95_s", "negative (-0.1)"),)),
    "nan-rate": ({"inference_requests_total": QueryResult(None, "nan")}, "rate_rps", None, (("rate_rps", "nan"),)),
    "inf-rate": ({"inference_requests_total": QueryResult(math.inf, "inf")}, "rate_rps", None,
                 (("rate_rps", "inf"),)),
    "nan-inflight": ({"inflight": QueryResult(None, "nan")}, "inflight", None, (("inflight", "nan"),)),
    "inf-inflight": ({"inflight": QueryResult(math.inf, "inf")}, "inflight", None, (("inflight", "inf"),)),
    "nan-cpu": ({"cpu_seconds": QueryResult(None, "nan")}, "cpu_cores", None, (("cpu_cores", "nan"),)),
    "inf-cpu": ({"cpu_seconds": QueryResult(-math.inf, "inf")}, "cpu_cores", None, (("cpu_cores", "inf"),)),
    "negative-inf-p95": ({"histogram_quantile": QueryResult(-math.inf, "inf")}, "p95_ms", None,
                         (("p95_s", "inf"),)),
}


@pytest.mark.parametrize("changes,field,value,errors", INPUT_CASES.values(), ids=INPUT_CASES.keys())
def test_collector_single_input_problems(changes, field, value, errors):
    m, _ = collect(**changes)
    assert m.problem is None
    assert getattr(m, field) == value
    assert m.errors == errors
