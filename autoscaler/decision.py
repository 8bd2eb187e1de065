"""What every policy takes and returns: `Observation` in, `Decision` out, `State` carried between polls.

Kept apart from the policies (and importing none of them) so that a policy, the registry, the loop
and a simulator can all depend on these types without depending on each other.

`State` holds only what is common to every policy (when the autoscaler started, how many polls in a
row had no data); whatever one policy remembers lives in its own frozen state type (`SloState`,
`HpaState`, ...) in `State.policy`. A new policy thus adds a module, not fields to a shared type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Observation:
    """One poll's view of the service. Metric fields are None when Prometheus had no usable value."""

    current_replicas: int          # replicas asked for (Deployment spec, gunicorn's worker target): the base
    ready_replicas: int            # replicas that serve traffic now
    rate_rps: float | None = None
    p95_ms: float | None = None    # None when idle (no requests, so no quantile) or unknown; may be inf
    inflight: float | None = None
    queue_depth: float | None = None
    cpu_cores: float | None = None
    problem: str | None = None     # set when the metrics as a whole are unusable, e.g. "prometheus: timeout"


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

    def direction(self, current: int) -> str:
        if self.replicas > current:
            return "up"
        if self.replicas < current:
            return "down"
        return "hold"


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))
