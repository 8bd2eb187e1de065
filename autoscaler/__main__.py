"""`python -m autoscaler`: wiring only. Exit codes: 0 stopped by SIGTERM/SIGINT, 1 fatal (RBAC, missing
Deployment, port in use), 2 bad configuration (nothing was touched)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from .collector import PrometheusSource
from .config import ConfigError, load_config
from .loop import Loop
from .scalers import FatalScalerError, build_scaler
from .telemetry import Telemetry, TelemetryServer


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"autoscaler: configuration error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"event": "config", **config.as_dict()}, separators=(",", ":")), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    server = None
    try:
        scaler = build_scaler(config, stop)
        telemetry = Telemetry(config.stall_after_s)
        if config.metrics_port:
            try:
                server = TelemetryServer(telemetry, config.metrics_host, config.metrics_port).start()
            except OSError as exc:
                print(f"autoscaler: fatal: cannot serve /metrics on {config.metrics_host}:{config.metrics_port}: "
                      f"{exc}", file=sys.stderr, flush=True)
                return 1
        Loop(config, PrometheusSource.from_config(config), scaler, telemetry).run(stop)
    except FatalScalerError as exc:
        print(f"autoscaler: fatal: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if server is not None:
            server.stop()
    print(json.dumps({"event": "stopped"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
