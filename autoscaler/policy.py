"""The decider: `decide(observation, state, config, now_s) -> Decision(replicas, state, reason)`.

Pure: no I/O, no sleeps, no clock reads. Everything a policy remembers between polls (sample windows,
past recommendations, scale events, learned capacity) lives in the immutable `State` it is handed and
returns, so a decision is reproducible from its inputs and tests need no fakes.

This is the one entry point, and what every policy shares lives here: the policy's own state is
started fresh when missing, and missing data holds the current count (then falls back to
FALLBACK_REPLICAS after FALLBACK_AFTER_FAILURES polls) before any policy runs. The policies are in
their own modules, found through the registry in policies.py; the types are in decision.py
(re-exported here, where callers have always imported them).
"""

from __future__ import annotations

from dataclasses import replace

from .config import Config
from .decision import Decision, Metrics, Observation, State, clamp
from .policies import POLICIES, PolicySpec

__all__ = ["Decision", "Metrics", "Observation", "State", "clamp", "decide"]


def decide(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    spec = POLICIES[config.policy]
    if state.started_s is None:
        state = replace(state, started_s=now_s)
    if not isinstance(state.policy, spec.state_type):
        # The first poll, or a state left by another policy: this one has no past to go on.
        state = replace(state, policy=spec.state_type())
    missing = _missing_data(obs.metrics, spec)
    if missing is not None:
        return _no_data(obs, state, config, missing)
    return spec.decide(obs, replace(state, failures=0), config, now_s)


def _missing_data(metrics: Metrics, spec: PolicySpec) -> str | None:
    """Why these metrics cannot drive the policy, or None if they can."""
    if metrics.problem is not None:
        return str(metrics.problem)
    if spec.needs and all(getattr(metrics, name) is None for name in spec.needs):
        return spec.no_data
    return None


def _no_data(obs: Observation, state: State, config: Config, why: str) -> Decision:
    failures = state.failures + 1
    state = replace(state, failures=failures)
    if config.fallback_replicas and failures >= config.fallback_after_failures:
        return Decision(config.fallback_replicas, state,
                        f"fallback: no data for {failures} polls ({why}), going to {config.fallback_replicas}",
                        "fallback")
    return Decision(obs.status.current, state, f"hold: no-data ({why})", "no-data")
