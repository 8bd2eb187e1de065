"""The `static` policy: hold MIN_REPLICAS whatever the load, the baseline that autoscaling must beat."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .decision import Decision, Observation, State



@dataclass(frozen=True)
class StaticState:
    """Nothing to remember; a type all the same, so every policy's state is handled alike."""


def decide_static(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    target = config.min_replicas
    if obs.status.current == target:
        return Decision(target, state, f"hold: static {target}", "static")
    verb = "scale-up" if target > obs.status.current else "scale-down"
    return Decision(target, state, f"{verb}: static {target}", "static")
