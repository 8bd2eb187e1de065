"""The entry point gunicorn loads in each worker (after the fork)."""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask

from inference.app import create_app
from inference.backends import BackendError
from inference.config import ConfigError
from inference.spec import WeightsError

# gunicorn's APP_LOAD_ERROR: the master stops with this message instead of respawning workers forever.
APP_LOAD_ERROR = 4
log = logging.getLogger("inference")


def create_worker_app() -> Flask:
    """The app, or one log line naming why this worker cannot start and what to change, then exit 4."""
    try:
        return create_app()
    except (ConfigError, WeightsError, BackendError) as exc:
        log.error("cannot start: %s", exc)
    except OSError as exc:
        log.error("cannot start: %s (%s: %s): check that the files MODEL_WEIGHTS and MODEL_CACHE_DIR name exist "
                  "and are readable by this user (uid %s)", exc.strerror or exc, type(exc).__name__,
                  exc.filename or "", os.geteuid())
    except Exception as exc:  # noqa: BLE001 - e.g. a backend refusing a corrupt model: one line, not a halt loop
        log.error("cannot start: %s: %s; delete the model cache entry (MODEL_CACHE_DIR) so it is converted "
                  "again, or choose another MODEL_BACKEND", type(exc).__name__, exc)
    sys.exit(APP_LOAD_ERROR)
