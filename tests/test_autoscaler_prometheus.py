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
from autoscaler.outcomes import Outcome, QueryResult, Unusable
from autoscaler.prometheus import PrometheusClient
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


def ok(value: float) -> QueryResult:
    return QueryResult(Outcome.OK, value)


CASES = {
    # id: (status and body, the result, its words in the decision log, its label in the error counter)
    "one-series": ((200, vector("12.5")), ok(12.5), "ok", "ok"),
    "scalar": ((200, json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [NOW, "3"]}})),
               ok(3.0), "ok", "ok"),
    "empty-vector": ((200, vector()), QueryResult(Outcome.EMPTY), "empty", "empty"),
    "several-series": ((200, vector("1", "2", "3")), QueryResult(Outcome.SEVERAL_SERIES, detail="3"),
                       "several series (3)", "several-series"),
    "nan": ((200, vector("NaN")), QueryResult(Outcome.NAN), "nan", "nan"),
    "plus-inf": ((200, vector("+Inf")), QueryResult(Outcome.INF, math.inf), "inf", "inf"),
    "stale-sample": ((200, vector("5", ts=NOW - 120)), QueryResult(Outcome.STALE, detail="sample 120s old"),
                     "stale (sample 120s old)", "stale"),
    "status-error": ((400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})),
                     QueryResult(Outcome.STATUS_ERROR, detail="bad_data: parse error at char 5"),
                     "status error: bad_data: parse error at char 5", "status-error"),
    "http-503-not-json": ((503, "Service Unavailable"), QueryResult(Outcome.HTTP_ERROR, http_status=503),
                          "http 503", "http-503"),
    "http-500-json-without-status": ((500, json.dumps({"oops": 1})),
                                     QueryResult(Outcome.HTTP_ERROR, detail="http 500", http_status=500),
                                     "http 500: http 500", "http-500"),
    "not-json": ((200, "<html>proxy login</html>"), QueryResult(Outcome.BAD_RESPONSE, detail="not JSON"),
                 "bad response: not JSON", "bad-response"),
    "matrix": ((200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})),
               QueryResult(Outcome.BAD_RESPONSE, detail="result type 'matrix'"),
               "bad response: result type 'matrix'", "bad-response"),
    "garbled-sample": ((200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": ["x"]}]}})), QueryResult(Outcome.BAD_RESPONSE, detail="sample is not [time, value]"),
        "bad response: sample is not [time, value]", "bad-response"),
}


@pytest.mark.parametrize("answer,expected,words,kind", CASES.values(), ids=CASES.keys())
def test_query_outcomes(canned, answer, expected, words, kind):
    canned.answer = (*answer, 0.0)
    client = PrometheusClient(canned.url, timeout_s=5, stale_after_s=30, clock=lambda: NOW)
    result = client.query("up")
    assert result == expected and (result.text, result.kind) == (words, kind) and not result.unreachable
    assert canned.requests[-1] == {"path": "/api/v1/query", "query": "up", "time": f"{NOW:.3f}"}


def test_timeout(canned):
    canned.answer = (200, vector("1"), 2.0)
    result = PrometheusClient(canned.url, timeout_s=0.3, clock=lambda: NOW).query("up")
    assert result == QueryResult(Outcome.TIMEOUT) and result.unreachable
    assert (result.text, result.kind) == ("timeout", "timeout")


def test_connection_refused():
    result = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=2).query("up")
    assert result == QueryResult(Outcome.CONNECTION_REFUSED) and result.unreachable
    assert (result.text, result.kind) == ("connection refused", "connection-refused")


WORDS = {
    # id: (result, its words, its label): the outcomes no canned answer above produces
    "connection-error": (QueryResult(Outcome.CONNECTION_ERROR), "connection error", "connection-error"),
    "request-failed": (QueryResult(Outcome.REQUEST_FAILED, detail="InvalidURL"), "request failed: InvalidURL",
                       "request-failed"),
    "negative": (QueryResult(Outcome.NEGATIVE, detail="-50"), "negative (-50)", "negative"),
    "stale-age": (QueryResult(Outcome.STALE), "stale", "stale"),
}


@pytest.mark.parametrize("result,words,kind", WORDS.values(), ids=WORDS.keys())
def test_every_outcome_has_words_and_a_low_cardinality_label(result, words, kind):
    assert (result.text, result.kind) == (words, kind)


def test_only_a_server_that_does_not_answer_is_unreachable():
    unreachable = {o for o in Outcome if o.unreachable}
    assert unreachable == {Outcome.CONNECTION_REFUSED, Outcome.CONNECTION_ERROR, Outcome.TIMEOUT}


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


HEALTHY = {"timestamp(": ok(2.0), "inference_requests_total": ok(8.0), "histogram_quantile": ok(0.25),
           "inflight": ok(1.5), "queue_depth": ok(0.0), "cpu_seconds": ok(0.9)}


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
    # id: (answers that differ from HEALTHY, why the poll is unusable, its words, queries asked)
    "refused-stops-the-poll": ({"timestamp(": QueryResult(Outcome.CONNECTION_REFUSED)}, Unusable.UNREACHABLE,
                               "prometheus: connection refused", 1),
    "timeout-mid-poll-stops-it": ({"histogram_quantile": QueryResult(Outcome.TIMEOUT)}, Unusable.UNREACHABLE,
                                  "prometheus: timeout", 3),
    "stale-data": ({"timestamp(": ok(95.0)}, Unusable.STALE, "stale: newest sample 95s old", 1),
    "no-series-for-job": ({"timestamp(": QueryResult(Outcome.EMPTY),
                           "inference_requests_total": QueryResult(Outcome.EMPTY),
                           "inflight": QueryResult(Outcome.EMPTY)}, Unusable.NO_SERIES,
                          "no series from job resnet18-inference", 6),
}


@pytest.mark.parametrize("changes,why,problem,queries", COLLECTOR_CASES.values(), ids=COLLECTOR_CASES.keys())
def test_collector_poll_level_problems(changes, why, problem, queries):
    m, querier = collect(**changes)
    assert m.problem.why is why and str(m.problem) == problem and m.rate_rps is None
    assert len(querier.asked) == queries


def test_an_unreachable_prometheus_is_counted_once_under_the_query_that_found_it():
    m, _ = collect(histogram_quantile=QueryResult(Outcome.TIMEOUT))
    assert m.errors == (("p95_s", QueryResult(Outcome.TIMEOUT)),)


INPUT_CASES = {
    # A failed scrape stales the series at once (empty age) while the windows still hold samples.
    "age-empty-windows-still-decide": ({"timestamp(": QueryResult(Outcome.EMPTY)}, "rate_rps", 8.0,
                                       (("age_s", "empty"),)),
    "idle-p95-nan-is-not-an-error": ({"histogram_quantile": QueryResult(Outcome.NAN)}, "p95_ms", None, ()),
    "p95-in-inf-bucket-is-kept": ({"histogram_quantile": QueryResult(Outcome.INF, math.inf)}, "p95_ms", math.inf,
                                  ()),
    "empty-rate": ({"inference_requests_total": QueryResult(Outcome.EMPTY)}, "rate_rps", None,
                   (("rate_rps", "empty"),)),
    "several-series-cpu": ({"cpu_seconds": QueryResult(Outcome.SEVERAL_SERIES, detail="2")}, "cpu_cores", None,
                           (("cpu_cores", "several series (2)"),)),
    "status-error-inflight": ({"inflight": QueryResult(Outcome.STATUS_ERROR, detail="bad_data")}, "inflight", None,
                              (("inflight", "status error: bad_data"),)),
    "http-error-queue": ({"queue_depth": QueryResult(Outcome.HTTP_ERROR, http_status=502)}, "queue_depth", None,
                         (("queue", "http 502"),)),
    "bad-response-rate": ({"inference_requests_total": QueryResult(Outcome.BAD_RESPONSE, detail="no data")},
                          "rate_rps", None, (("rate_rps", "bad response: no data"),)),
    "stale-sample-cpu": ({"cpu_seconds": QueryResult(Outcome.STALE, detail="sample 40s old")}, "cpu_cores", None,
                         (("cpu_cores", "stale (sample 40s old)"),)),
    "request-failed-inflight": ({"inflight": QueryResult(Outcome.REQUEST_FAILED, detail="InvalidURL")}, "inflight",
                                None, (("inflight", "request failed: InvalidURL"),)),
    # Not measurements: each is refused as unknown, never fed to the demand.
    "negative-rate": ({"inference_requests_total": ok(-50.0)}, "rate_rps", None, (("rate_rps", "negative (-50)"),)),
    "negative-inflight": ({"inflight": ok(-1.5)}, "inflight", None, (("inflight", "negative (-1.5)"),)),
    "negative-cpu": ({"cpu_seconds": ok(-0.5)}, "cpu_cores", None, (("cpu_cores", "negative (-0.5)"),)),
    "negative-queue": ({"queue_depth": ok(-3.0)}, "queue_depth", None, (("queue", "negative (-3)"),)),
    "negative-p95": ({"histogram_quantile": ok(-0.1)}, "p95_ms", None, (("p95_s", "negative (-0.1)"),)),
    "nan-rate": ({"inference_requests_total": QueryResult(Outcome.NAN)}, "rate_rps", None, (("rate_rps", "nan"),)),
    "inf-rate": ({"inference_requests_total": QueryResult(Outcome.INF, math.inf)}, "rate_rps", None,
                 (("rate_rps", "inf"),)),
    "nan-inflight": ({"inflight": QueryResult(Outcome.NAN)}, "inflight", None, (("inflight", "nan"),)),
    "inf-inflight": ({"inflight": QueryResult(Outcome.INF, math.inf)}, "inflight", None, (("inflight", "inf"),)),
    "nan-cpu": ({"cpu_seconds": QueryResult(Outcome.NAN)}, "cpu_cores", None, (("cpu_cores", "nan"),)),
    "inf-cpu": ({"cpu_seconds": QueryResult(Outcome.INF, -math.inf)}, "cpu_cores", None, (("cpu_cores", "inf"),)),
    "negative-inf-p95": ({"histogram_quantile": QueryResult(Outcome.INF, -math.inf)}, "p95_ms", None,
                         (("p95_s", "inf"),)),
}


@pytest.mark.parametrize("changes,field,value,errors", INPUT_CASES.values(), ids=INPUT_CASES.keys())
def test_collector_single_input_problems(changes, field, value, errors):
    m, _ = collect(**changes)
    assert m.problem is None
    assert getattr(m, field) == value
    assert tuple((query, result.text) for query, result in m.errors) == errors
