"""What every policy takes and returns: `Observation` in, `Decision` out, `State` carried between polls.

Kept apart from the policies (and importing none of them) so that a policy, the registry, the loop
and a simulator can all depend on these types without depending on each other.

An `Observation` is two halves that arrive whole: the scaler's `ScalerStatus` and the collector's
`Metrics`. `State` holds only what is common to every policy (when the autoscaler started, how many
polls in a row had no data); whatever one policy remembers lives in its own frozen state type
(`SloState`, `HpaState`, ...) in `State.policy`. A new policy thus adds a module, not fields to a shared type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .outcomes import PollProblem, QueryResult
from .scaling import ScalerStatus


@dataclass(frozen=True)
class Metrics:
    """The metric half of an Observation, built by the collector. A value is None when Prometheus had
    none usable."""

    rate_rps: float | None = None
    p95_ms: float | None = None    # None when idle (no requests, so no quantile) or unknown; may be inf
    inflight: float | None = None
    queue_depth: float | None = None
    cpu_cores: float | None = None
    problem: PollProblem | None = None                       # set: nothing from this poll is usable
    errors: tuple[tuple[str, QueryResult], ...] = ()         # (query name, its answer) for every failed query


@dataclass(frozen=True)
class Observation:
    """One poll's view of the service. Policies decide from `status.current`, the target the scaler
    converges to, and `status.ready`."""

    status: ScalerStatus
    metrics: Metrics = field(default_factory=Metrics)


@dataclass(frozen=True)
class State:
    started_s: float | None = None
    failures: int = 0              # consecutive polls without usable data
    # The policy's own frozen state, or None before its first poll (decide() then starts a fresh one).
    policy: object | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    state: State
    reason: str                    # human text for the log, e.g. "scale-up: p95 812ms > slo 500ms"
    kind: str                      # short, low-cardinality label for metrics, e.g. "latency"
    panic: bool = False
    details: Mapping[str, object] = field(default_factory=dict)
    # The policy's own gauges (PolicySpec.gauges): metric name -> value now. One left out keeps its value.
    gauges: Mapping[str, float] = field(default_factory=dict)

    def direction(self, current: int) -> str:
        if self.replicas > current:
            return "up"
        if self.replicas < current:
            return "down"
        return "hold"


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))
