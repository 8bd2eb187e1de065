"""The autoscaler's own /metrics and /healthz, served by a small HTTP server thread.

/healthz answers 503 once no loop iteration has finished for STALL_AFTER_S: a loop stuck on a hung
call must get the pod restarted, while a loop that is merely holding (no data, backing off) is healthy.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .policies import POLICIES


class Telemetry:
    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry()
        r = self.registry
        self.desired = Gauge("autoscaler_desired_replicas", "Replicas the last decision asked for.", registry=r)
        self.current = Gauge("autoscaler_current_replicas", "Replicas the target was set to (spec).", registry=r)
        self.ready = Gauge("autoscaler_ready_replicas", "Replicas ready to serve.", registry=r)
        self.decisions = Counter("autoscaler_decisions_total", "Decisions by direction and reason kind.",
                                 ["direction", "reason"], registry=r)
        self.panic = Gauge("autoscaler_panic", "1 while the slo policy is in panic mode.", registry=r)
        self.prometheus_errors = Counter("autoscaler_prometheus_errors_total",
                                         "Failed PromQL queries by query and kind of failure.",
                                         ["query", "kind"], registry=r)
        self.scaler_errors = Counter("autoscaler_scaler_errors_total", "Failed scaler calls.", registry=r)
        self.loop_duration = Histogram("autoscaler_loop_duration_seconds", "Wall time of one loop iteration.",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                       registry=r)
        # Every policy's own gauges, whichever runs, so /metrics has the same series under any POLICY.
        self.policy_gauges = {name: Gauge(name, help_text, registry=r)
                              for spec in POLICIES.values() for name, help_text in spec.gauges.items()}
        self.last_loop = Gauge("autoscaler_last_loop_timestamp_seconds",
                               "Unix time the last loop iteration finished.", registry=r)
        self.stall_after_s = stall_after_s
        self.clock = clock
        self._heartbeat = clock()

    def heartbeat(self) -> None:
        self._heartbeat = self.clock()
        self.last_loop.set(time.time())

    def stalled_for_s(self) -> float | None:
        """Seconds since the last iteration if that is longer than allowed, else None."""
        age = self.clock() - self._heartbeat
        return age if age > self.stall_after_s else None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class TelemetryServer:
    def __init__(self, telemetry: Telemetry, host: str, port: int):
        handler = _handler_for(telemetry)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="telemetry", daemon=True)

    def start(self) -> "TelemetryServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler_for(telemetry: Telemetry):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, telemetry.exposition(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                stalled = telemetry.stalled_for_s()
                if stalled is None:
                    self._send(200, b"ok\n")
                else:
                    self._send(503, f"stalled: no loop iteration for {stalled:.0f}s\n".encode())
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes every few seconds would drown the decision log
            pass

    return Handler
