"""The loop with hand-written fakes for its two I/O edges (metrics source, scaler), its own /metrics and
/healthz, and the process as a whole (`python -m autoscaler`: startup log, SIGTERM)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import threading

import pytest
import requests

from autoscaler.config import Config
from autoscaler.decision import Metrics
from autoscaler.loop import Loop
from autoscaler.outcomes import Outcome, PollProblem, QueryResult, Unusable
from autoscaler.scalers import FatalScalerError, ScalerError, ScalerStatus
from autoscaler.telemetry import Telemetry, TelemetryServer
from tests.support import PYTHON, REPO, free_port, start_child, wait_until


class FakeSource:
    def __init__(self, *metrics: Metrics):
        self.metrics = list(metrics)

    def collect(self) -> Metrics:
        return self.metrics.pop(0) if len(self.metrics) > 1 else self.metrics[0]


class FakeScaler:
    """Applies set_replicas at once; `fail_status` / `fail_set` raise the given errors, in order."""

    def __init__(self, replicas: int = 1):
        self.replicas = replicas
        self.calls: list[int] = []
        self.fail_status: list[Exception] = []
        self.fail_set: list[Exception] = []

    def status(self) -> ScalerStatus:
        if self.fail_status:
            raise self.fail_status.pop(0)
        return ScalerStatus(self.replicas, self.replicas, self.replicas)

    def set_replicas(self, replicas: int) -> None:
        if self.fail_set:
            raise self.fail_set.pop(0)
        self.calls.append(replicas)
        self.replicas = replicas


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def config(**overrides) -> Config:
    base = dict(scaler="dry-run", policy="slo", capacity_rps_per_replica=10, target_inflight_per_replica=0,
                poll_interval_s=5, forecast_horizon_s=0, capacity_learning=False, target_utilization=0.7)
    base.update(overrides)
    return Config(**base).validate()


def make_loop(source, scaler, **overrides):
    out = io.StringIO()
    clock = Clock()
    loop = Loop(config(**overrides), source, scaler, out=out, clock=clock, wall=lambda: 1_800_000_000.0)
    return loop, out, clock


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_step_scales_and_logs_one_json_line():
    scaler = FakeScaler(1)
    loop, out, _ = make_loop(FakeSource(Metrics(rate_rps=20.0, p95_ms=120.0, inflight=2.0, queue_depth=1.0,
                                                cpu_cores=0.8)), scaler)
    decision = loop.step()
    assert decision.replicas == 3 and scaler.calls == [3]   # ceil(20 / 7), within SCALE_UP_MAX_RATIO 4
    [line] = lines(out)
    assert line["time"] == "2027-01-15T08:00:00.000Z"
    assert {k: line[k] for k in ("event", "policy", "rate_rps", "p95_ms", "inflight", "queue", "current", "ready",
                                 "desired", "direction", "panic", "kind")} == {
        "event": "decision", "policy": "slo", "rate_rps": 20.0, "p95_ms": 120.0, "inflight": 2.0, "queue": 1.0,
        "current": 1, "ready": 1, "desired": 3, "direction": "up", "panic": True, "kind": "load"}
    assert line["reason"].startswith("scale-up: demand 2.86 replicas")


def test_hold_does_not_call_the_scaler():
    scaler = FakeScaler(3)
    loop, out, _ = make_loop(FakeSource(Metrics(rate_rps=20.0, p95_ms=120.0)), scaler)
    loop.step()
    assert scaler.calls == [] and lines(out)[0]["reason"].startswith("hold: within tolerance")


def test_no_data_is_logged_and_counted():
    scaler = FakeScaler(2)
    refused = QueryResult(Outcome.CONNECTION_REFUSED)
    loop, out, _ = make_loop(FakeSource(Metrics(problem=PollProblem(Unusable.UNREACHABLE, refused.text),
                                                errors=(("age_s", refused),))), scaler)
    loop.step()
    line = lines(out)[0]
    assert line["reason"] == "hold: no-data (prometheus: connection refused)" and line["desired"] == 2
    assert line["query_errors"] == {"age_s": "connection refused"}
    exposition = loop.telemetry.exposition().decode()
    assert 'autoscaler_decisions_total{direction="hold",reason="no-data"} 1.0' in exposition
    assert 'autoscaler_prometheus_errors_total{kind="connection-refused",query="age_s"} 1.0' in exposition


def test_inf_p95_is_logged_as_valid_json():
    loop, out, _ = make_loop(FakeSource(Metrics(rate_rps=1.0, p95_ms=float("inf"))), FakeScaler(1))
    loop.step()
    assert lines(out)[0]["p95_ms"] == "inf"


FAILED_QUERIES = {
    # id: (the failed query's answer, its words in the decision line, its label in the error counter)
    "several": (QueryResult(Outcome.SEVERAL_SERIES, detail="3"), "several series (3)", "several-series"),
    "http": (QueryResult(Outcome.HTTP_ERROR, http_status=503), "http 503", "http-503"),
    "status": (QueryResult(Outcome.STATUS_ERROR, detail="bad_data: x"), "status error: bad_data: x", "status-error"),
    "nan": (QueryResult(Outcome.NAN), "nan", "nan"),
}


@pytest.mark.parametrize("result,words,kind", FAILED_QUERIES.values(), ids=FAILED_QUERIES.keys())
def test_failed_queries_are_logged_in_words_and_counted_by_a_low_cardinality_kind(result, words, kind):
    loop, out, _ = make_loop(FakeSource(Metrics(rate_rps=20.0, errors=(("cpu_cores", result),))), FakeScaler(3))
    loop.step()
    assert lines(out)[0]["query_errors"] == {"cpu_cores": words}
    assert f'autoscaler_prometheus_errors_total{{kind="{kind}",query="cpu_cores"}} 1.0' in \
        loop.telemetry.exposition().decode()


def test_the_policy_publishes_its_gauges_through_the_decision():
    loop, _, _ = make_loop(FakeSource(Metrics(rate_rps=20.0, p95_ms=120.0)), FakeScaler(3))
    decision = loop.step()
    assert decision.gauges == {"autoscaler_capacity_rps_per_replica": 10.0}
    assert "autoscaler_capacity_rps_per_replica 10.0" in loop.telemetry.exposition().decode()


def test_a_decision_without_gauges_leaves_them_as_they_were():
    no_data = Metrics(problem=PollProblem(Unusable.STALE, "90"))
    loop, _, _ = make_loop(FakeSource(Metrics(rate_rps=20.0, p95_ms=120.0), no_data), FakeScaler(3),
                           capacity_rps_per_replica=12)
    loop.step()
    assert loop.step().gauges == {}
    assert "autoscaler_capacity_rps_per_replica 12.0" in loop.telemetry.exposition().decode()


def test_scaler_errors_back_off_and_the_loop_keeps_running():
    scaler = FakeScaler(1)
    scaler.fail_status = [ScalerError("HTTP 500")] * 3
    loop, out, clock = make_loop(FakeSource(Metrics(rate_rps=1.0)), scaler)
    waits: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            clock.t += timeout
            if len(waits) == 5:
                self.set()
            return self.is_set()

    loop.run(Stop())
    assert waits == [10.0, 20.0, 40.0, 5.0, 5.0]  # doubled per failure, reset after a success
    events = [line["event"] for line in lines(out)]
    assert events == ["scaler-error"] * 3 + ["decision"] * 2
    assert "autoscaler_scaler_errors_total 3.0" in loop.telemetry.exposition().decode()


def test_failed_set_replicas_is_logged_as_not_applied():
    scaler = FakeScaler(1)
    scaler.fail_set = [ScalerError("timeout")]
    loop, out, _ = make_loop(FakeSource(Metrics(rate_rps=30.0)), scaler)
    loop.step()
    assert [line.get("applied") for line in lines(out)] == [None, False]
    assert loop.scaler_failures == 1


@pytest.mark.parametrize("call", ["fail_status", "fail_set"])
def test_fatal_scaler_error_stops_the_loop(call):
    scaler = FakeScaler(1)
    setattr(scaler, call, [FatalScalerError("no such Deployment")])
    loop, out, _ = make_loop(FakeSource(Metrics(rate_rps=30.0)), scaler)
    with pytest.raises(FatalScalerError):
        loop.run(threading.Event())
    assert not [line for line in lines(out) if line["event"] in ("scaler-error", "loop-error")]
    assert not issubclass(FatalScalerError, ScalerError)   # no handler of retryable failures can swallow it


def test_healthz_fails_when_the_loop_stalls_and_metrics_are_served():
    clock = Clock()
    telemetry = Telemetry(stall_after_s=30, clock=clock)
    server = TelemetryServer(telemetry, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        clock.t += 31
        resp = requests.get(f"{base}/healthz", timeout=5)
        assert resp.status_code == 503 and "stalled" in resp.text
        telemetry.heartbeat()
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        for name in ("autoscaler_desired_replicas", "autoscaler_current_replicas", "autoscaler_decisions_total",
                     "autoscaler_panic", "autoscaler_prometheus_errors_total", "autoscaler_scaler_errors_total",
                     "autoscaler_loop_duration_seconds"):
            assert f"# TYPE {name.removesuffix('_total')}" in metrics, name
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    finally:
        server.stop()


def test_process_serves_metrics_holds_without_prometheus_and_exits_cleanly_on_sigterm(tmp_path):
    port = free_port()
    env = {"SCALER": "dry-run", "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}", "POLL_INTERVAL_S": "0.2",
           "METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"}
    child = start_child("autoscaler", [PYTHON, "-m", "autoscaler"], tmp_path, env=env)
    try:
        wait_until(lambda: "no-data (prometheus: connection refused)" in child.log(), timeout_s=60,
                   what="a no-data decision")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'autoscaler_decisions_total{direction="hold",reason="no-data"}' in metrics
        child.signal(signal.SIGTERM)
        assert child.proc.wait(30) == 0
    finally:
        child.stop()
    records = [json.loads(line) for line in child.log().splitlines() if line.startswith("{")]
    assert records[0]["event"] == "config" and records[0]["scaler"] == "dry-run"
    assert records[0]["queries"]["query_rate_rps"].startswith("sum(rate(inference_requests_total{job=")
    assert records[-1] == {"event": "stopped"}


def test_process_without_kubernetes_credentials_exits_1_with_the_reason(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing"),
           "METRICS_PORT": "0"}
    proc = subprocess.run([PYTHON, "-m", "autoscaler", "--scaler", "kubernetes"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "autoscaler: fatal: no Kubernetes credentials" in proc.stderr


def test_an_unexpected_error_in_one_iteration_does_not_end_the_loop():
    class Broken(FakeSource):
        calls = 0

        def collect(self):
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("boom")
            return Metrics(rate_rps=1.0)

    loop, out, clock = make_loop(Broken(), FakeScaler(1))

    class Stop(threading.Event):
        def wait(self, timeout=None):
            clock.t += timeout
            self.set()
            return True

    loop.run(Stop())   # the first iteration fails ...
    loop.step()        # ... and the loop carries on
    assert [line["event"] for line in lines(out)] == ["loop-error", "decision"]
    assert lines(out)[0]["error"] == "RuntimeError: boom"
