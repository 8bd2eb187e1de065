"""The entry point gunicorn loads in each worker (after the fork)."""

from __future__ import annotations

import logging
import sys

from flask import Flask

from inference.app import create_app
from inference.backends import BackendError
from inference.config import ConfigError
from inference.model import WeightsError

# gunicorn's APP_LOAD_ERROR: the master stops with this message instead of respawning workers forever.
APP_LOAD_ERROR = 4


def create_worker_app() -> Flask:
    try:
        return create_app()
    except (ConfigError, WeightsError, BackendError) as exc:
        logging.getLogger("inference").error("cannot start: %s", exc)
        sys.exit(APP_LOAD_ERROR)
