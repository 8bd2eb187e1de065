"""The decider: `decide(observation, state, config, now_s) -> Decision(replicas, state, reason)`.

Pure: no I/O, no sleeps, no clock reads. Everything a policy remembers between polls (sample windows,
past recommendations, scale events, learned capacity) lives in the immutable `State` it is handed and
returns, so a decision is reproducible from its inputs and tests need no fakes.

What is shared by every policy lives here: missing data holds the current count (then falls back to
FALLBACK_REPLICAS after FALLBACK_AFTER_FAILURES polls), and the `static` policy. The `slo` and `hpa`
policies are in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from .config import Config


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
class Sample:
    t_s: float
    rate_rps: float | None
    inflight: float | None


@dataclass(frozen=True)
class State:
    started_s: float | None = None
    failures: int = 0                                   # consecutive polls without usable data
    # slo policy
    samples: tuple[Sample, ...] = ()
    recommendations: tuple[tuple[float, int], ...] = ()  # (t_s, replicas) for scale-down stabilization
    last_scale_down_s: float | None = None
    panic_until_s: float | None = None
    settled_at_s: float | None = None                   # metrics reflect the current replicas from then on
    capacity_rps: float | None = None                   # learned per-replica capacity
    traffic_since_s: float | None = None                # when the rate last rose above 0 (None while idle)
    # hpa policy
    hpa_recommendations: tuple[tuple[float, int], ...] = ()
    hpa_scale_up_events: tuple[tuple[float, int], ...] = ()
    hpa_scale_down_events: tuple[tuple[float, int], ...] = ()


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


def decide(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    if state.started_s is None:
        state = replace(state, started_s=now_s)
    missing = _missing_data(obs, config)
    if missing is not None:
        return _no_data(obs, state, config, missing)
    state = replace(state, failures=0)
    if config.policy == "static":
        return _static(obs, state, config)
    if config.policy == "hpa":
        from .hpa import decide_hpa
        return decide_hpa(obs, state, config, now_s)
    from .slo import decide_slo
    return decide_slo(obs, state, config, now_s)


def _missing_data(obs: Observation, config: Config) -> str | None:
    """Why this observation cannot drive the policy, or None if it can."""
    if obs.problem:
        return obs.problem
    if config.policy == "slo":
        if obs.rate_rps is None and obs.inflight is None:
            return "no request rate or in-flight data"
    elif config.policy == "hpa":
        if obs.cpu_cores is None:
            return "no cpu data"
    return None


def _no_data(obs: Observation, state: State, config: Config, why: str) -> Decision:
    failures = state.failures + 1
    state = replace(state, failures=failures)
    if config.fallback_replicas and failures >= config.fallback_after_failures:
        return Decision(config.fallback_replicas, state,
                        f"fallback: no data for {failures} polls ({why}), going to {config.fallback_replicas}",
                        "fallback")
    return Decision(obs.current_replicas, state, f"hold: no-data ({why})", "no-data")


def _static(obs: Observation, state: State, config: Config) -> Decision:
    target = config.min_replicas
    if obs.current_replicas == target:
        return Decision(target, state, f"hold: static {target}", "static")
    verb = "scale-up" if target > obs.current_replicas else "scale-down"
    return Decision(target, state, f"{verb}: static {target}", "static")


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))
