"""The autoscaler against the real local stack: gunicorn running the service (random weights) and a real
Prometheus scraping it every second, both on free 127.0.0.1 ports.

One gunicorn and one Prometheus serve the whole module (starting them costs more than the tests);
each test leaves gunicorn at one worker. The end-to-end test runs the autoscaler as a process with
short windows so a burst, the quiet after it and a Prometheus outage fit in about a minute.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests

from autoscaler.collector import PrometheusSource
from autoscaler.config import Config
from autoscaler.gunicorn_scaler import GunicornScaler, alive
from tests.support import (PYTHON, Child, free_port, gunicorn_master_pid, ready_workers, synthetic_jpeg, start_child,
                           start_gunicorn, start_prometheus, wait_until, child_pids)

pytestmark = pytest.mark.slow

PROMETHEUS_YML = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: resnet18-inference
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class Load:
    """Closed-loop load: `threads` clients posting a JPEG to /predict back to back until stopped."""

    def __init__(self, url: str, threads: int = 3):
        self.url = url
        self.codes: Counter = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._image = synthetic_jpeg()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                r = requests.post(f"{self.url}/predict", data=self._image, headers={"Content-Type": "image/jpeg"},
                                  timeout=30)
                with self._lock:
                    self.codes[r.status_code] += 1
            except requests.RequestException as exc:
                with self._lock:
                    self.errors.append(repr(exc))

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(60)

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code != 200) + len(self.errors)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    gunicorn = start_gunicorn(tmp, workers=1, env={"GRACEFUL_TIMEOUT_S": "20"})
    # Tests may replace a server (the outage test restarts Prometheus): stop whatever is here at the end.
    stack = {"tmp": tmp, "gunicorn": gunicorn, "started": [gunicorn]}
    try:
        stack["prometheus"] = start_prometheus(tmp, PROMETHEUS_YML.format(port=gunicorn.extra["port"]))
        stack["started"].append(stack["prometheus"])
        yield stack
    finally:
        for child in reversed(stack["started"]):
            child.stop()


def one_worker(gunicorn: Child) -> bool:
    return len(child_pids(gunicorn_master_pid(gunicorn.extra["pidfile"]))) == 1


def test_default_queries_return_sane_values_from_a_real_prometheus(stack):
    config = Config(scaler="dry-run", prometheus_url=stack["prometheus"].extra["url"], rate_window_s=5).validate()
    source = PrometheusSource.from_config(config)
    with Load(stack["gunicorn"].extra["url"], threads=2) as load:
        metrics = wait_until(lambda: (m := source.collect()).problem is None and m.rate_rps and m.p95_ms
                             and m.cpu_cores and m, timeout_s=90, what="metrics under load")
    assert load.failed == 0
    assert 0.5 < metrics.rate_rps < 500
    assert 1 < metrics.p95_ms < 10_000 and math.isfinite(metrics.p95_ms)
    assert 0 <= metrics.inflight <= 10
    assert metrics.queue_depth is not None and metrics.queue_depth >= 0
    assert 0.05 < metrics.cpu_cores < 4
    assert metrics.errors == ()


def test_gunicorn_scaler_adds_a_serving_worker_and_removes_one_without_failed_requests(stack):
    gunicorn = stack["gunicorn"]
    pidfile = gunicorn.extra["pidfile"]
    scaler = GunicornScaler(pidfile, drain_timeout_s=30)
    assert scaler.status().current == 1
    first = child_pids(gunicorn_master_pid(pidfile))

    scaler.set_replicas(2)
    assert scaler.status().current == 2
    wait_until(lambda: len(ready_workers(pidfile)) == 2, timeout_s=120, what="the added worker to warm up")
    [added] = set(child_pids(gunicorn_master_pid(pidfile))) - set(first)
    serving = set()
    wait_until(lambda: serving.add(requests.get(f"{gunicorn.extra['url']}/info", timeout=10).json()["pid"])
               or added in serving, timeout_s=60, interval_s=0.02, what=f"worker {added} to answer")
    assert scaler.status().ready == 2

    with Load(gunicorn.extra["url"], threads=3) as load:
        wait_until(lambda: sum(load.codes.values()) >= 10, timeout_s=60, what="load to flow")
        scaler.set_replicas(1)
        # gunicorn removes the OLDEST worker; set_replicas returns once it has drained and exited (the
        # master may take a moment more to reap it).
        assert not any(alive(pid) for pid in first)
        wait_until(lambda: child_pids(gunicorn_master_pid(pidfile)) == [added], timeout_s=30,
                   what="only the added worker left")
        status = scaler.status()
        assert (status.current, status.live) == (1, 1)
        done = sum(load.codes.values())
        wait_until(lambda: sum(load.codes.values()) >= done + 5, timeout_s=60, what="load after the removal")
    assert load.failed == 0, (load.codes, load.errors[:3])


def restart(child: Child, log_dir: Path) -> Child:
    """The same server again (same argv, so the same port and data), after it was stopped."""
    conf_dir = Path(child.proc.args[1].split("=", 1)[1]).parent  # from --config.file=...
    again = start_child(child.name + "-again", child.proc.args, log_dir, cwd=conf_dir)
    again.extra.update(child.extra)
    try:
        wait_until(lambda: requests.get(f"{child.extra['url']}/-/ready", timeout=2).status_code == 200,
                   timeout_s=90, what="prometheus back")
    except AssertionError:
        again.stop()
        raise
    return again


def decisions(child: Child) -> list[dict]:
    out = []
    for line in child.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "decision":
                out.append(record)
    return out


def test_end_to_end_burst_scales_up_quiet_scales_down_and_prometheus_outage_holds(stack):
    gunicorn, prometheus, tmp = stack["gunicorn"], stack["prometheus"], stack["tmp"]
    pidfile = gunicorn.extra["pidfile"]
    wait_until(lambda: one_worker(gunicorn), timeout_s=60, what="one worker before the test")
    metrics_port = free_port()
    env = {
        "SCALER": "gunicorn", "GUNICORN_PIDFILE": str(pidfile), "PROMETHEUS_URL": prometheus.extra["url"],
        "POLICY": "slo", "MIN_REPLICAS": "1", "MAX_REPLICAS": "3", "POLL_INTERVAL_S": "1", "RATE_WINDOW_S": "5",
        "STABLE_WINDOW_S": "8", "PANIC_WINDOW_S": "3", "SCALE_DOWN_STABILIZATION_S": "6", "SCALE_DOWN_STEP_S": "2",
        "CAPACITY_RPS_PER_REPLICA": "3", "TARGET_INFLIGHT_PER_REPLICA": "0", "CAPACITY_LEARNING": "false",
        "FORECAST_HORIZON_S": "0", "STALE_AFTER_S": "10", "PROMETHEUS_TIMEOUT_S": "1", "DRAIN_TIMEOUT_S": "25",
        "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(metrics_port),
    }
    autoscaler = start_child("autoscaler-e2e", [PYTHON, "-m", "autoscaler"], tmp / "logs", env=env)
    prometheus_again = None
    try:
        wait_until(lambda: decisions(autoscaler), timeout_s=60, what="the first decision")

        with Load(gunicorn.extra["url"], threads=4) as load:
            wait_until(lambda: any(d["direction"] == "up" for d in decisions(autoscaler)), timeout_s=90,
                       what="a scale-up during the burst")
            wait_until(lambda: len(ready_workers(pidfile)) >= 2, timeout_s=120, what="a second ready worker")
        assert load.failed == 0, (load.codes, load.errors[:3])

        wait_until(lambda: one_worker(gunicorn) and any(d["direction"] == "down" for d in decisions(autoscaler)),
                   timeout_s=120, what="scale-down to one worker in the quiet")
        downs = [d for d in decisions(autoscaler) if d["direction"] == "down"]
        assert all(d["current"] - d["desired"] == 1 for d in downs)  # stepped, one at a time

        prometheus.stop()
        wait_until(lambda: any(d["reason"] == "hold: no-data (prometheus: connection refused)"
                               for d in decisions(autoscaler)), timeout_s=60, what="no-data while Prometheus is down")
        outage = [d for d in decisions(autoscaler) if d["kind"] == "no-data"]
        assert all(d["desired"] == d["current"] for d in outage)

        seen = len(decisions(autoscaler))
        prometheus_again = restart(prometheus, tmp / "logs")
        stack["started"].append(prometheus_again)
        wait_until(lambda: any(d["kind"] != "no-data" for d in decisions(autoscaler)[seen:]), timeout_s=90,
                   what="decisions from data again after Prometheus is back")

        exposition = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'autoscaler_decisions_total{direction="up"' in exposition
        assert 'autoscaler_decisions_total{direction="hold",reason="no-data"}' in exposition
        assert requests.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5).status_code == 200
    finally:
        autoscaler.stop()
        if prometheus_again is not None:  # later tests query the server that runs now
            stack["prometheus"] = prometheus_again
    assert autoscaler.proc.returncode == 0, autoscaler.log()[-3000:]
