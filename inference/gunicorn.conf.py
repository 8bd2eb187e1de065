"""gunicorn settings and hooks for the inference service: `gunicorn -c inference/gunicorn.conf.py`.

Every value comes from inference/config.py (environment variables); this file only maps them onto
gunicorn and adds the hooks that make scaling safe:
- metrics: prometheus_client's multiprocess recipe (directory wiped at start, dead workers marked);
- pinning: with WORKER_CPUS, each new worker is pinned to the CPUs its live siblings hold least
  (inference/cpu_pinning.py);
- readiness: a worker that has loaded and warmed its model creates its marker (processes/ready_marker.py),
  which the local autoscaler counts as a ready replica;
- draining: SIGTERM (also what TTOU sends to the removed worker) turns the worker not-ready; gunicorn stops
  accepting connections, the worker answers every request it already holds, then exits within
  graceful_timeout.
"""

import os
import signal
import sys
import tempfile
from pathlib import Path

from inference import cpu_pinning
from inference.config import ConfigError, ServiceConfig
from processes.ready_marker import marker_path, markers

try:
    SETTINGS = ServiceConfig.from_env()
except ConfigError as exc:
    print(f"inference: bad configuration: {exc}", file=sys.stderr)
    sys.exit(2)

# Workers inherit this; it must be set before prometheus_client is first imported in them.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="inference-metrics-")
MULTIPROC_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

wsgi_app = "inference.wsgi:create_worker_app()"
bind = f"{SETTINGS.bind_host}:{SETTINGS.port}"
workers = SETTINGS.web_concurrency
# gthread, sharing one queue between the workers of a pod (inference/worker.py).
worker_class = "inference.worker.SharedQueueWorker"
threads = SETTINGS.threads_per_worker
# No keep-alive: new connections spread over new workers and pods at once (a kept-alive client stays
# pinned to the replica it first reached), and a draining worker never races a request on an idle socket.
keepalive = 0
graceful_timeout = int(-(-SETTINGS.graceful_timeout_s // 1))  # gunicorn wants whole seconds
# A watchdog for hung workers only; model load and warm-up happen before the first heartbeat.
timeout = 120
pidfile = SETTINGS.gunicorn_pidfile or None
loglevel = "info"
# Run the model thread and the request threads in the worker, never in the master.
preload_app = False
# The control socket defaults to $HOME/.gunicorn, which is read-only in the pod and shared by every local
# instance; the autoscaler uses signals (TTIN/TTOU) instead.
control_socket_disable = True


def _ready_marker(server_or_worker, pid: int) -> Path | None:
    pid_path = server_or_worker.cfg.pidfile
    return marker_path(pid_path, pid) if pid_path else None


def _remove(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def on_starting(server):
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
    # Values of a previous run would be summed into this one's: start from nothing.
    for leftover in MULTIPROC_DIR.glob("*.db"):
        leftover.unlink()
    if server.cfg.pidfile:
        for marker in markers(server.cfg.pidfile).values():
            marker.unlink()


def pre_fork(server, worker):
    # In the master, which knows the live workers' CPUs: the new worker takes the least held ones.
    if SETTINGS.worker_cpus:
        held = [getattr(w, "cpus", ()) for w in server.WORKERS.values()]
        worker.cpus = cpu_pinning.pick_cpus(cpu_pinning.allowed_cpus(), held, SETTINGS.worker_cpus)


def post_fork(server, worker):
    # In the new worker, before it loads the model: every thread it starts inherits the affinity.
    if getattr(worker, "cpus", ()):
        cpu_pinning.pin(worker.cpus)
        worker.log.info("worker %s pinned to CPU(s) %s", worker.pid, ",".join(map(str, worker.cpus)))


def post_worker_init(worker):
    state = worker.wsgi.extensions["inference"]
    marker = _ready_marker(worker, worker.pid)

    def drain(sig, frame):
        _remove(marker)
        state.start_draining()
        worker.handle_exit(sig, frame)

    signal.signal(signal.SIGTERM, drain)
    if marker is not None:
        marker.touch()
    classifier = state.classifier
    worker.log.info("worker %s ready: %s weights on %s (%s, %s), %d model threads, batch <= %d, queue <= %d, %s",
                    worker.pid, classifier.weights, classifier.backend, classifier.precision,
                    "converted model from the cache" if classifier.converted_from_cache else
                    "converted now" if classifier.converted_from_cache is False else "no conversion",
                    classifier.threads, state.config.max_batch_size, state.config.queue_limit, state.quota_note)


def worker_exit(server, worker):
    _remove(_ready_marker(server, worker.pid))
    state = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("inference")
    if state is not None:
        state.stop(timeout_s=graceful_timeout)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(MULTIPROC_DIR))
    _remove(_ready_marker(server, worker.pid))
