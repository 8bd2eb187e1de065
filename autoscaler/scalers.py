"""The configured actuator: `build_scaler(config)` picks the dry-run, gunicorn or Kubernetes scaler.

The protocol, its status and errors, and the dry-run scaler are in scaling.py (which imports no
implementation); they are re-exported here, where callers have always imported them.
"""

from __future__ import annotations

import threading

from .config import Config
from .gunicorn_scaler import GunicornScaler
from .kubernetes_scaler import KubernetesScaler, build_apps_api
from .scaling import DryRunScaler, FatalScalerError, Scaler, ScalerError, ScalerStatus

__all__ = ["DryRunScaler", "FatalScalerError", "Scaler", "ScalerError", "ScalerStatus", "build_scaler"]


def build_scaler(config: Config, stop: threading.Event | None = None) -> Scaler:
    """The configured scaler. Its waits (drain, retry backoff) end early once `stop` is set, so SIGTERM
    is not held up by a worker that takes its time to drain."""
    stop = stop or threading.Event()
    if config.scaler == "dry-run":
        return DryRunScaler(config.min_replicas)
    if config.scaler == "gunicorn":
        return GunicornScaler(config.gunicorn_pidfile, drain_timeout_s=config.drain_timeout_s,
                              should_stop=stop.is_set)
    return KubernetesScaler(build_apps_api(), config.target_namespace, config.target_deployment,
                            timeout_s=config.scaler_timeout_s, sleep=stop.wait)
