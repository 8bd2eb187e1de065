"""The collector: runs the configured PromQL queries and turns their outcomes into the policy's inputs.

What each outcome means for a decision is decided here, once:
- Prometheus unreachable (refused, timeout) or the data stale -> the whole poll has no data (hold);
- a query with no series, NaN or an error -> that one input is unknown (None); the policy holds if it
  lacks what it needs (rate and in-flight for slo, CPU for hpa);
- p95 NaN is normal when idle (0/0 in histogram_quantile). A quantile in the histogram's +Inf bucket
  (slower than its largest bound) comes back not as +Inf but, as Prometheus 2.42 computes it, as the
  largest finite bound (10 s for the service's buckets; sim/prometheus.py bucket_quantile): an SLO miss
  for any SLO below that. A p95 of +Inf, should one come back, is kept as inf, a clear SLO miss;
- a negative value, or an infinite one other than that p95, is no measurement of a rate, a count or a
  duration (a counter reset misread, a broken recording rule, a hostile server): unknown (None), logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .config import Config
from .prometheus import PrometheusClient, QueryResult


@dataclass(frozen=True)
class Metrics:
    rate_rps: float | None = None
    p95_ms: float | None = None
    inflight: float | None = None
    queue_depth: float | None = None
    cpu_cores: float | None = None
    problem: str | None = None                            # set: nothing from this poll is usable
    errors: tuple[tuple[str, str], ...] = field(default=())  # (query name, problem) for every failed query


class MetricsSource(Protocol):
    def collect(self) -> Metrics: ...


class Querier(Protocol):
    def query(self, promql: str) -> QueryResult: ...


QUERIES = ("rate_rps", "p95_s", "inflight", "queue", "cpu_cores")


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
        errors: list[tuple[str, str]] = []
        if self.age_query:
            age = self.client.query(self.age_query)
            if age.unreachable:
                return Metrics(problem=f"prometheus: {age.problem}", errors=(("age_s", age.problem),))
            if age.ok and age.value > self.config.stale_after_s:
                return Metrics(problem=f"stale: newest sample {age.value:.0f}s old",
                               errors=(("age_s", "stale"),))
            if not age.ok:
                # Empty right after one failed scrape too (Prometheus marks the series stale at once),
                # while the windowed queries still have their samples: only those decide.
                errors.append(("age_s", age.problem))
        values: dict[str, float | None] = {}
        for name, promql in self.queries.items():
            if not promql:
                values[name] = None
                continue
            res = self.client.query(promql)
            if res.unreachable:
                return Metrics(problem=f"prometheus: {res.problem}", errors=tuple(errors) + ((name, res.problem),))
            if name == "p95_s" and res.problem == "inf" and res.value and res.value > 0:
                values[name] = res.value
                continue
            if not res.ok:
                # An idle service has no quantile: not an error worth counting.
                if not (name == "p95_s" and res.problem == "nan"):
                    errors.append((name, res.problem))
                values[name] = None
                continue
            if res.value < 0:
                errors.append((name, f"negative ({res.value:g})"))
                values[name] = None
                continue
            values[name] = res.value
        p95_s = values["p95_s"]
        problem = None
        if values["rate_rps"] is None and values["inflight"] is None and ("age_s", "empty") in errors:
            problem = f"no series from job {self.config.service_job}"
        return Metrics(rate_rps=values["rate_rps"], p95_ms=None if p95_s is None else p95_s * 1000.0,
                       inflight=values["inflight"], queue_depth=values["queue"], cpu_cores=values["cpu_cores"],
                       problem=problem, errors=tuple(errors))
