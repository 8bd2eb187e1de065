"""Fixtures shared by the test modules. Helpers that start real processes live in tests/support.py."""

from __future__ import annotations

import os
import signal

import pytest


def _interrupt(signum, frame):
    # Once: a second SIGTERM (make passes the first on) would cut short the teardown the first began.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


# SIGTERM (what .ci/run sends a run that is past its limit) ends the run like Ctrl-C: pytest still runs
# every fixture's teardown, which stops the servers the tests started in their own sessions.
signal.signal(signal.SIGTERM, _interrupt)

# In-process apps keep their metrics in a per-test registry; a multiprocess directory inherited from the
# shell would send them to files instead.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@pytest.fixture(scope="session")
def classifier():
    """One ResNet-18 with random weights for the whole run (loading it takes a second or two)."""
    from inference.model import Classifier

    return Classifier("random", "cpu")


@pytest.fixture
def make_app(classifier):
    """Build a service app around the shared model with a fresh metrics registry; settings as overrides."""
    from prometheus_client import CollectorRegistry

    from inference.app import create_app
    from inference.config import ServiceConfig

    apps = []

    def build(**overrides):
        overrides.setdefault("model_weights", "random")
        overrides.setdefault("warmup_batches", 0)
        config = ServiceConfig.from_env({}, **overrides)
        app = create_app(config=config, classifier=classifier, registry=CollectorRegistry())
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["inference"].stop(timeout_s=10)


@pytest.fixture
def client(make_app):
    return make_app().test_client()
