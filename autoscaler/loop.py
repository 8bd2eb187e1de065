"""The control loop: collect, decide, act, log - once per POLL_INTERVAL_S, until told to stop."""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Callable, TextIO

from .collector import MetricsSource
from .config import Config
from .policy import Decision, Observation, State, decide
from .scaling import FatalScalerError, Scaler, ScalerError
from .telemetry import Telemetry

MAX_BACKOFF_S = 60.0

log = logging.getLogger("autoscaler")


def _num(value: float | None, digits: int = 3):
    """JSON has no inf/nan: the log says "inf" rather than emitting invalid JSON."""
    if value is None:
        return None
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return round(value, digits)


class Loop:
    def __init__(self, config: Config, source: MetricsSource, scaler: Scaler, telemetry: Telemetry | None = None,
                 out: TextIO = sys.stdout, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, state: State | None = None):
        self.config = config
        self.source = source
        self.scaler = scaler
        self.telemetry = telemetry or Telemetry(config.stall_after_s, clock)
        self.out = out
        self.clock = clock
        self.wall = wall
        self.state = state or State()
        self.scaler_failures = 0

    def step(self) -> Decision | None:
        """One iteration. Returns the decision, or None when the scaler could not be read. A
        FatalScalerError passes through: retrying cannot help."""
        started = self.clock()
        try:
            metrics = self.source.collect()
            for query, result in metrics.errors:
                self.telemetry.prometheus_errors.labels(query, result.kind).inc()
            try:
                status = self.scaler.status()
            except ScalerError as exc:
                self._scaler_error("status", exc)
                return None
            obs = Observation(status, metrics)
            decision = decide(obs, self.state, self.config, self.clock())
            self.state = decision.state
            applied = True
            if decision.replicas != status.current:
                try:
                    self.scaler.set_replicas(decision.replicas)
                except ScalerError as exc:
                    applied = False
                    self._scaler_error("set_replicas", exc)
            if applied:
                self.scaler_failures = 0
            self._record(obs, decision, applied)
            return decision
        finally:
            self.telemetry.loop_duration.observe(self.clock() - started)
            self.telemetry.heartbeat()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            began = self.clock()
            try:
                self.step()
            except FatalScalerError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug in one iteration must not end autoscaling
                log.exception("loop iteration failed")
                self._emit({"time": self._now_iso(), "event": "loop-error", "error": f"{type(exc).__name__}: {exc}"})
            wait = self.config.poll_interval_s
            if self.scaler_failures:
                # Back off from a failing API server instead of hammering it every poll.
                wait = min(self.config.poll_interval_s * 2 ** self.scaler_failures,
                           max(MAX_BACKOFF_S, self.config.poll_interval_s))
            stop.wait(max(wait - (self.clock() - began), 0.0))

    def _scaler_error(self, call: str, exc: ScalerError) -> None:
        self.scaler_failures += 1
        self.telemetry.scaler_errors.inc()
        self._emit({"time": self._now_iso(), "event": "scaler-error", "call": call, "error": str(exc),
                    "consecutive": self.scaler_failures})

    def _record(self, obs: Observation, decision: Decision, applied: bool) -> None:
        status, m = obs.status, obs.metrics
        direction = decision.direction(status.current)
        t = self.telemetry
        t.decisions.labels(direction, decision.kind).inc()
        t.desired.set(decision.replicas)
        t.current.set(status.current)
        t.ready.set(status.ready)
        t.panic.set(1 if decision.panic else 0)
        for name, value in decision.gauges.items():
            t.policy_gauges[name].set(value)
        line = {
            "time": self._now_iso(), "event": "decision", "policy": self.config.policy,
            "rate_rps": _num(m.rate_rps), "p95_ms": _num(m.p95_ms, 1), "inflight": _num(m.inflight),
            "queue": _num(m.queue_depth), "cpu_cores": _num(m.cpu_cores),
            "current": status.current, "ready": status.ready, "live": status.live,
            "desired": decision.replicas, "direction": direction, "panic": decision.panic,
            "kind": decision.kind, "reason": decision.reason,
        }
        if not applied:
            line["applied"] = False
        if m.errors:
            line["query_errors"] = {query: result.text for query, result in m.errors}
        line.update({k: v for k, v in decision.details.items() if k not in line})
        self._emit(line)

    def _emit(self, record: dict) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.wall(), timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
