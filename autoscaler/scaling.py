"""The actuators' contract: one small protocol (status, set_replicas), its errors, and the dry-run scaler.

Kept apart from build_scaler (scalers.py) so that each scaler implementation and the loop can import
these names without importing the module that imports every implementation.

`ScalerStatus.current` is the replica count the scaler is converging to (a Deployment's spec.replicas,
the worker count a gunicorn master was told to keep), `ready` the replicas serving now, `live` the
replicas that exist (started, warming up or draining). Policies decide from `current`, the target:
deciding from `live`, which lags, repeats the same step on every poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("autoscaler")


@dataclass(frozen=True)
class ScalerStatus:
    current: int
    ready: int
    live: int


class ScalerError(Exception):
    """A scaler call failed; the loop backs off and tries again."""


class FatalScalerError(Exception):
    """Retrying cannot help (no such Deployment, no credentials): the autoscaler exits with this message.
    Not a ScalerError, so a handler of retryable failures never swallows it."""


class Scaler(Protocol):
    def status(self) -> ScalerStatus: ...

    def set_replicas(self, replicas: int) -> None: ...


class DryRunScaler:
    """Scales nothing; pretends every request took effect at once, so decisions can be watched safely."""

    def __init__(self, replicas: int):
        self.replicas = replicas

    def status(self) -> ScalerStatus:
        return ScalerStatus(self.replicas, self.replicas, self.replicas)

    def set_replicas(self, replicas: int) -> None:
        log.info("dry-run: would scale from %d to %d replicas", self.replicas, replicas)
        self.replicas = replicas
