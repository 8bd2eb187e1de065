"""How a poll's PromQL can end, as values: one query's `QueryResult` (an `Outcome` and its detail) and
why a whole poll is unusable (`PollProblem`).

The decision log's words ("several series (3)", "http 503", "prometheus: timeout") and the `kind` label
of autoscaler_prometheus_errors_total ("several-series", "http-503") are both rendered here from these
values, so nothing downstream reads a meaning back out of a string. What each outcome means for a
decision is the collector's to say (collector.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    """How one instant query ended. The value is the head of the log's words."""

    OK = "ok"
    CONNECTION_REFUSED = "connection refused"
    CONNECTION_ERROR = "connection error"
    TIMEOUT = "timeout"
    REQUEST_FAILED = "request failed"    # detail: the exception's type
    HTTP_ERROR = "http"                  # http_status set; detail: the error Prometheus named, if any
    STATUS_ERROR = "status error"        # `status: error` (bad PromQL); detail: its type and message
    BAD_RESPONSE = "bad response"        # detail: what is wrong with it
    EMPTY = "empty"                      # no series
    SEVERAL_SERIES = "several series"    # detail: how many (a query must aggregate to one)
    NAN = "nan"
    INF = "inf"                          # value: the infinity
    STALE = "stale"                      # detail: how old the sample is
    NEGATIVE = "negative"                # the collector's: no measurement of a rate, a count or a duration

    @property
    def unreachable(self) -> bool:
        """Prometheus itself did not answer: the rest of the poll is skipped, so a dead server costs one
        timeout per poll, not one per query."""
        return self in _UNREACHABLE


_UNREACHABLE = frozenset({Outcome.CONNECTION_REFUSED, Outcome.CONNECTION_ERROR, Outcome.TIMEOUT})
_DETAIL_IN_PARENS = frozenset({Outcome.SEVERAL_SERIES, Outcome.STALE, Outcome.NEGATIVE})


@dataclass(frozen=True)
class QueryResult:
    """One query's answer: a value (OK, and the infinity of INF) or why there is none."""

    outcome: Outcome
    value: float | None = None
    detail: str = ""
    http_status: int | None = None       # HTTP_ERROR's status code, part of its label

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def unreachable(self) -> bool:
        return self.outcome.unreachable

    @property
    def kind(self) -> str:
        """The metric label, low-cardinality: the words without their detail ("several-series", "http-503")."""
        return self._head().replace(" ", "-")

    @property
    def text(self) -> str:
        """The decision log's words: "empty", "several series (3)", "status error: bad_data: ..."."""
        head = self._head()
        if not self.detail:
            return head
        return f"{head} ({self.detail})" if self.outcome in _DETAIL_IN_PARENS else f"{head}: {self.detail}"

    def _head(self) -> str:
        return f"http {self.http_status}" if self.outcome is Outcome.HTTP_ERROR else self.outcome.value


class Unusable(Enum):
    """Why nothing from a poll is usable, so every policy holds (policy.py). The value renders the detail."""

    UNREACHABLE = "prometheus: {}"            # detail: the failed query's words
    STALE = "stale: newest sample {}s old"    # detail: the newest sample's age in whole seconds
    NO_SERIES = "no series from job {}"       # detail: the service's job label


@dataclass(frozen=True)
class PollProblem:
    why: Unusable
    detail: str

    def __str__(self) -> str:
        return self.why.value.format(self.detail)
