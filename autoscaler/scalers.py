"""The actuators: one small protocol (status, set_replicas) and the dry-run scaler.

`ScalerStatus.current` is the replica count the scaler is converging to (a Deployment's spec.replicas,
the worker count a gunicorn master was told to keep), `ready` the replicas serving now, `live` the
replicas that exist (started, warming up or draining). Policies decide from `current`, the target:
deciding from `live`, which lags, repeats the same step on every poll.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from .config import Config

log = logging.getLogger("autoscaler")


@dataclass(frozen=True)
class ScalerStatus:
    current: int
    ready: int
    live: int


class ScalerError(Exception):
    """A scaler call failed; the loop backs off and tries again."""


class FatalScalerError(ScalerError):
    """Retrying cannot help (no permission, no such Deployment): the autoscaler exits with this message."""


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


def build_scaler(config: Config, stop: threading.Event | None = None) -> Scaler:
    """The configured scaler. Its waits (drain, retry backoff) end early once `stop` is set, so SIGTERM
    is not held up by a worker that takes its time to drain."""
    stop = stop or threading.Event()
    if config.scaler == "dry-run":
        return DryRunScaler(config.min_replicas)
    if config.scaler == "gunicorn":
        from .gunicorn_scaler import GunicornScaler
        return GunicornScaler(config.gunicorn_pidfile, drain_timeout_s=config.drain_timeout_s,
                              should_stop=stop.is_set)
    from .kubernetes_scaler import KubernetesScaler, build_apps_api
    return KubernetesScaler(build_apps_api(), config.target_namespace, config.target_deployment,
                            timeout_s=config.scaler_timeout_s, sleep=stop.wait)
