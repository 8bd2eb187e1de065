"""One run of the local stack: gunicorn, Prometheus, the autoscaler, then the load tester; then stop all.

Order matters both ways. Up: the service first (Prometheus scrapes it, the autoscaler signals its
master), Prometheus second (the autoscaler's only input), the autoscaler third, the load tester last,
once every part answers its readiness check. Down: the load tester first (no new requests), the
autoscaler (nothing signals gunicorn while it stops), gunicorn (its workers finish what they hold), and
Prometheus last, after the report's queries.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import requests

from local.config import REPO, Options
from local.live import LiveLine
from processes.children import PYTHON, Child, StartError, group_members, wait_for, wait_ready
from processes.net import HOST, http_ok, listening, port_in_use
from processes.services import prometheus_binary, ready_workers, start_gunicorn, start_prometheus
from local.prometheus_config import write_config
from planning.sizing import Sizing

# Readiness probes are cheap; polling them fast shortens every run's start-up.
PROBE_INTERVAL_S = 0.25
LOADTESTER_NICE = -5


@dataclass(frozen=True)
class RunPlan:
    """What one run does: the policy, its replica bounds, and where it writes."""

    name: str                 # slo, static-min, static-max, hpa-50, hpa-90
    policy: str               # the autoscaler's POLICY
    min_replicas: int
    max_replicas: int
    initial_replicas: int
    trace: Path
    scale: float
    run_dir: Path
    hpa_target_cpu: float | None = None

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def check_ports(options: Options) -> None:
    """Refuse to start when a port is taken, naming the option that moves it."""
    for flag, port in (("--service-port", options.service_port), ("--prometheus-port", options.prometheus_port),
                       ("--autoscaler-port", options.autoscaler_port)):
        if port_in_use(port):
            raise StartError(f"port {port} on {HOST} is already in use (by another program or an earlier run "
                             f"still stopping); stop it or choose another port with {flag}")


def service_settings(model_weights: str, max_queue: int = 0, max_queue_wait_ms: float | None = None) -> dict[str, str]:
    """The service's settings in the local stack (and for the calibration worker: the service's own queue
    defaults, as a pod has them)."""
    # A worker is a replica worth one core, as a pod with a 1-CPU limit: one intra-op thread, and every thread
    # of the worker pinned to its own core (its decoding would otherwise spill onto the cores of the others).
    settings = {"TORCH_THREADS": "1", "WORKER_CPUS": "1", "MODEL_WEIGHTS": model_weights,
                "MAX_QUEUE": str(max_queue)}
    if max_queue_wait_ms is not None:
        settings["MAX_QUEUE_WAIT_MS"] = f"{max_queue_wait_ms:g}"
    return settings


class Stack:
    """Context manager: `with Stack(...) as stack: stack.replay()`; leaving it stops every child."""

    def __init__(self, options: Options, sizing: Sizing, plan: RunPlan, console: TextIO = sys.stdout,
                 label: str = ""):
        self.options = options
        self.label = label
        self.sizing = sizing
        self.plan = plan
        self.console = console
        self.run_dir = plan.run_dir
        self.log_dir = plan.run_dir / "logs"
        self.state_dir = plan.run_dir / "state"
        self.pidfile = self.state_dir / "gunicorn.pid"
        self.children: dict[str, Child] = {}
        self.service_url = f"http://{HOST}:{options.service_port}"
        self.prometheus_url = f"http://{HOST}:{options.prometheus_port}"
        self.autoscaler_url = f"http://{HOST}:{options.autoscaler_port}"
        self.decision_log = plan.run_dir / "decisions.jsonl"
        self.loadtest_dir = plan.run_dir / "loadtest"
        self.stop_report: dict = {}

    # --- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        check_ports(self.options)
        prometheus_binary()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._say(f"starting the service: gunicorn with {self.plan.initial_replicas} worker(s) on {self.service_url}")
        self._start_gunicorn()
        self._say(f"starting Prometheus on {self.prometheus_url}")
        self._start_prometheus()
        self._say(f"starting the autoscaler (policy {self._policy_text()}, {self.plan.min_replicas}.."
                  f"{self.plan.max_replicas} workers) on {self.autoscaler_url}")
        self._start_autoscaler()

    def stop(self) -> None:
        """Stop every child in order, then make sure no process of theirs and none of the ports is left."""
        for name in ("loadtester", "autoscaler", "gunicorn", "prometheus"):
            child = self.children.get(name)
            if child is not None:
                status = child.stop(timeout_s=45.0 if name == "gunicorn" else 20.0)
                self.stop_report[name] = {"pid": child.pid, "exit_status": status}
        ports = (self.options.service_port, self.options.prometheus_port, self.options.autoscaler_port)
        wait_for(lambda: not any(listening(p) for p in ports), 15.0)
        self.stop_report["ports_listening"] = [p for p in ports if listening(p)]
        self.stop_report["processes_left"] = sorted(
            pid for child in self.children.values() for pid in group_members(child.pid))

    # --- the parts --------------------------------------------------------------------------------------
    def _console(self) -> TextIO | None:
        return self.console if self.options.verbose else None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], stdout_path: Path | None = None,
               nice: int = 0) -> Child:
        return self._register(Child(name, argv, self.log_dir, env, REPO, console=self._console(),
                                    stdout_path=stdout_path, nice=nice))

    def _register(self, child: Child) -> Child:
        self.children[child.name] = child
        # Which PIDs belong to this run, for whoever has to check on it or clean up after a crash.
        (self.state_dir / "pids.json").write_text(json.dumps({n: c.pid for n, c in self.children.items()}) + "\n")
        return child

    def _wait_ready(self, child: Child, condition, what: str) -> None:
        wait_ready(child, condition, self.options.ready_timeout_s, what, PROBE_INTERVAL_S)

    def _start_gunicorn(self) -> None:
        o, p = self.options, self.plan
        self._register(start_gunicorn(
            self.state_dir, workers=p.initial_replicas, port=o.service_port, ready_timeout_s=o.ready_timeout_s,
            settings=service_settings(o.model_weights, self.sizing.max_queue, self.sizing.max_queue_wait_ms),
            log_dir=self.log_dir,
            console=self._console()))

    def _start_prometheus(self) -> None:
        conf_dir = self.run_dir / "prometheus"
        write_config(conf_dir, self.options.service_port, self.options.autoscaler_port)
        child = self._register(start_prometheus(conf_dir, port=self.options.prometheus_port, log_dir=self.log_dir,
                                                ready_timeout_s=self.options.ready_timeout_s,
                                                console=self._console()))
        # The first seconds of the replay need data: wait for the first scrape of the service.
        self._wait_ready(child, self._service_scraped, "a first scrape of the service")

    def _service_scraped(self) -> bool:
        body = requests.get(f"{self.prometheus_url}/api/v1/query", timeout=2,
                            params={"query": 'up{job="resnet18-inference"}'}).json()
        return any(r["value"][1] == "1" for r in body["data"]["result"])

    def autoscaler_env(self) -> dict[str, str]:
        o, p, sizing = self.options, self.plan, self.sizing
        # Sizing defaults: a value already set in the environment wins, so any knob can be tuned by hand.
        tunable = {
            **sizing.timings.autoscaler_env(),
            "CAPACITY_RPS_PER_REPLICA": f"{sizing.capacity_within_slo_rps:g}",
            "TARGET_INFLIGHT_PER_REPLICA": f"{sizing.target_inflight_per_replica:g}",
            # Several 1 s scrapes: one missed scrape is not an outage.
            "STALE_AFTER_S": "10",
        }
        env = {k: v for k, v in tunable.items() if not os.environ.get(k)}
        env.update({
            "SCALER": "gunicorn", "GUNICORN_PIDFILE": str(self.pidfile), "PROMETHEUS_URL": self.prometheus_url,
            "POLICY": p.policy, "MIN_REPLICAS": str(p.min_replicas), "MAX_REPLICAS": str(p.max_replicas),
            "SLO_P95_MS": f"{sizing.slo_ms:g}", "METRICS_HOST": HOST, "METRICS_PORT": str(o.autoscaler_port),
        })
        if p.hpa_target_cpu is not None:
            env["HPA_TARGET_CPU"] = f"{p.hpa_target_cpu:g}"
        return env

    def _start_autoscaler(self) -> None:
        child = self._spawn("autoscaler", [PYTHON, "-m", "autoscaler"], self.autoscaler_env(),
                            stdout_path=self.decision_log)
        self._wait_ready(child, lambda: http_ok(f"{self.autoscaler_url}/healthz"), f"{self.autoscaler_url}/healthz")

    def replay(self) -> int:
        """Run the load tester to the end of the trace; return its exit status. Fails if a part dies meanwhile."""
        o, p = self.options, self.plan
        status_file = self.state_dir / "loadtester-status.json"
        argv = [PYTHON, "-m", "loadtester", "--url", self.service_url, "--trace", str(p.trace),
                "--out", str(self.loadtest_dir), "--seed", str(o.seed), "--scale", f"{p.scale:g}",
                "--slo-ms", f"{self.sizing.slo_ms:g}", "--window", "10", "--prometheus", self.prometheus_url,
                "--no-progress", "--status-file", str(status_file)]
        self._say(f"replaying {p.trace.name} (scale {p.scale:g}, seed {o.seed}) against {self.service_url}")
        # On a busy machine the workers (dozens of threads each) can starve the load tester, whose sends
        # would then slip behind schedule and count as service latency. A higher priority keeps the client
        # on schedule, as if it ran on a machine of its own; it uses little CPU, so the service loses little.
        # Raising priority needs root; without it the load tester runs at the usual priority (and its
        # summary reports any lag).
        child = self._spawn("loadtester", argv, {}, nice=LOADTESTER_NICE)
        # With -v the children's own lines go to the console, which a redrawn line would garble.
        live = None if o.verbose else LiveLine(self.console, status_file, self.decision_log, self.sizing.slo_ms,
                                                 self.label or p.name)
        try:
            while child.alive():
                for name in ("gunicorn", "prometheus", "autoscaler"):
                    part = self.children[name]
                    if not part.alive():
                        raise StartError(f"{name} exited with status {part.proc.returncode} during the replay; "
                                         f"the end of {part.log_path}:\n{part.log_tail()}")
                if live is not None:
                    live.update()
                time.sleep(0.5)
        finally:
            if live is not None:
                live.close()
        status = child.stop()
        if status not in (0, None) or not (self.loadtest_dir / "summary.json").is_file():
            raise StartError(f"the load tester exited with status {status}; the end of {child.log_path}:\n"
                             f"{child.log_tail()}")
        return status

    # --- helpers ----------------------------------------------------------------------------------------
    def ready_workers(self) -> list[int]:
        return ready_workers(self.pidfile)

    def _policy_text(self) -> str:
        if self.plan.policy == "hpa":
            return f"hpa at {self.plan.hpa_target_cpu:.0%} CPU"
        return self.plan.policy

    def _say(self, text: str) -> None:
        print(f"local: {text}", file=self.console, flush=True)

