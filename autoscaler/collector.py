"""The collector: runs the configured PromQL queries and builds the metric half of the observation.

What each outcome (outcomes.Outcome) means for a decision is decided here, once, one outcome at a time:
- Prometheus unreachable (refused, connection error, timeout) or the data stale -> the whole poll has
  no data (hold);
- a query with no series, several, NaN, an HTTP or PromQL error, a garbled or stale sample -> that one
  input is unknown (None); the policy holds if it lacks what it needs (rate and in-flight for slo, CPU
  for hpa);
- p95 NaN is normal when idle (0/0 in histogram_quantile). A quantile in the histogram's +Inf bucket
  (slower than its largest bound) comes back not as +Inf but, as Prometheus 2.42 computes it, as the
  largest finite bound (10 s for the service's buckets; sim/prometheus.py bucket_quantile): an SLO miss
  for any SLO below that. A p95 of +Inf, should one come back, is kept as inf, a clear SLO miss;
- a negative value, or an infinite one other than that p95, is no measurement of a rate, a count or a
  duration (a counter reset misread, a broken recording rule, a hostile server): unknown (None), logged.
"""

from __future__ import annotations

from typing import Protocol

from .config import Config
from .decision import Metrics
from .outcomes import Outcome, PollProblem, QueryResult, Unusable
from .prometheus import PrometheusClient


class MetricsSource(Protocol):
    def collect(self) -> Metrics: ...


class Querier(Protocol):
    def query(self, promql: str) -> QueryResult: ...


QUERIES = ("rate_rps", "p95_s", "inflight", "queue", "cpu_cores")


def _reading(name: str, res: QueryResult) -> tuple[float | None, QueryResult | None]:
    """What a reachable Prometheus' answer to query `name` means for that input: (its value or None,
    the failure to count and log or None)."""
    match res.outcome:
        case Outcome.OK if res.value < 0:
            return None, QueryResult(Outcome.NEGATIVE, detail=f"{res.value:g}")
        case Outcome.OK:
            return res.value, None
        case Outcome.INF if name == "p95_s" and res.value > 0:
            return res.value, None
        case Outcome.NAN if name == "p95_s":
            return None, None      # an idle service has no quantile: not an error worth counting
        case (Outcome.INF | Outcome.NAN | Outcome.EMPTY | Outcome.SEVERAL_SERIES | Outcome.STALE | Outcome.HTTP_ERROR
              | Outcome.STATUS_ERROR | Outcome.BAD_RESPONSE | Outcome.REQUEST_FAILED):
            return None, res
    raise ValueError(f"{name}: {res.outcome} is no answer of a reachable Prometheus")


class PrometheusSource:
    def __init__(self, client: Querier, config: Config):
        self.client = client
        self.config = config
        self.queries = {name: config.query("query_" + name) for name in QUERIES}
        self.age_query = config.query("query_age_s")

    @classmethod
    def from_config(cls, config: Config) -> "PrometheusSource":
        return cls(PrometheusClient(config.prometheus_url, config.prometheus_timeout_s, config.stale_after_s),
                   config)

    def collect(self) -> Metrics:
        errors: list[tuple[str, QueryResult]] = []
        age_empty = False
        if self.age_query:
            age = self.client.query(self.age_query)
            if age.unreachable:
                return Metrics(problem=PollProblem(Unusable.UNREACHABLE, age.text), errors=(("age_s", age),))
            if age.ok and age.value > self.config.stale_after_s:
                return Metrics(problem=PollProblem(Unusable.STALE, f"{age.value:.0f}"),
                               errors=(("age_s", QueryResult(Outcome.STALE)),))
            if not age.ok:
                # Empty right after one failed scrape too (Prometheus marks the series stale at once),
                # while the windowed queries still have their samples: only those decide.
                errors.append(("age_s", age))
                age_empty = age.outcome is Outcome.EMPTY
        values: dict[str, float | None] = {}
        for name, promql in self.queries.items():
            if not promql:
                values[name] = None
                continue
            res = self.client.query(promql)
            if res.unreachable:
                return Metrics(problem=PollProblem(Unusable.UNREACHABLE, res.text),
                               errors=tuple(errors) + ((name, res),))
            values[name], failure = _reading(name, res)
            if failure is not None:
                errors.append((name, failure))
        p95_s = values["p95_s"]
        problem = None
        if values["rate_rps"] is None and values["inflight"] is None and age_empty:
            problem = PollProblem(Unusable.NO_SERIES, self.config.service_job)
        return Metrics(rate_rps=values["rate_rps"], p95_ms=None if p95_s is None else p95_s * 1000.0,
                       inflight=values["inflight"], queue_depth=values["queue"], cpu_cores=values["cpu_cores"],
                       problem=problem, errors=tuple(errors))
