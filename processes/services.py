"""The service (gunicorn) and Prometheus, started as the local stack, the benchmarks and the tests run them.

Each starter returns a `Child` once the process answers its readiness check, with `extra` holding `url`
and `port` (and, for gunicorn, `pidfile` and `multiproc_dir`); it raises StartError with the end of the
log when the process exits or is not ready in time.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping, TextIO

from processes.children import PYTHON, Child, StartError, pid_alive, wait_ready
from processes.net import HOST, free_port, http_ok
from processes.ready_marker import marked_pids

GUNICORN_ARGV = (PYTHON, "-m", "gunicorn", "-c", "inference/gunicorn.conf.py")


def ready_workers(pidfile: Path) -> list[int]:
    """PIDs of gunicorn workers that wrote their readiness marker and still run."""
    return [pid for pid in marked_pids(pidfile) if pid_alive(pid)]


def gunicorn_env(*, port: int, pidfile: Path, metrics_dir: Path, workers: int,
                 settings: Mapping[str, object] | None = None) -> dict[str, str]:
    """The service's environment on a loopback port: where it binds, its pidfile (next to which the workers'
    readiness markers go), its multiprocess metrics directory, and any service settings."""
    return {"PORT": str(port), "BIND_HOST": HOST, "WEB_CONCURRENCY": str(workers), "GUNICORN_PIDFILE": str(pidfile),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **{k: str(v) for k, v in (settings or {}).items()}}


def start_gunicorn(work_dir: Path, *, workers: int = 1, settings: Mapping[str, object] | None = None,
                   port: int | None = None, wait_workers: int | None = None, ready_timeout_s: float = 180.0,
                   name: str = "gunicorn", log_dir: Path | None = None, console: TextIO | None = None) -> Child:
    """The service under gunicorn, its state in `work_dir`; waits for /readyz and `wait_workers` (default: all)
    warmed-up workers."""
    port = port or free_port()
    pidfile = work_dir / "gunicorn.pid"
    multiproc_dir = work_dir / "prom-multiproc"
    env = gunicorn_env(port=port, pidfile=pidfile, metrics_dir=multiproc_dir, workers=workers, settings=settings)
    child = Child(name, GUNICORN_ARGV, log_dir or work_dir / "logs", env, console=console)
    url = f"http://{HOST}:{port}"
    child.extra.update(url=url, port=port, pidfile=pidfile, multiproc_dir=multiproc_dir)
    want = workers if wait_workers is None else wait_workers
    return wait_ready(child, lambda: http_ok(f"{url}/readyz") and len(ready_workers(pidfile)) >= want,
                      ready_timeout_s, f"{url}/readyz and {want} warmed-up worker(s)")


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if not path:
        raise StartError("the `prometheus` binary is not on PATH: run `make setup` as root (installs Debian's "
                         "prometheus package) or `sudo apt-get install -y prometheus`")
    return path


def start_prometheus(conf_dir: Path, config_yaml: str | None = None, *, port: int | None = None,
                     extra_files: Mapping[str, str] | None = None, ready_timeout_s: float = 90.0,
                     log_dir: Path | None = None, console: TextIO | None = None) -> Child:
    """Prometheus with `conf_dir/prometheus.yml` (written from `config_yaml` when given, with `extra_files`
    beside it: rule files it names), its data in `conf_dir/data`; waits for /-/ready."""
    port = port or free_port()
    conf_dir.mkdir(parents=True, exist_ok=True)
    if config_yaml is not None:
        (conf_dir / "prometheus.yml").write_text(config_yaml)
    for file_name, text in (extra_files or {}).items():
        (conf_dir / file_name).write_text(text)
    argv = [prometheus_binary(), f"--config.file={conf_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={conf_dir / 'data'}", f"--web.listen-address={HOST}:{port}",
            "--web.enable-lifecycle", "--log.level=warn"]
    child = Child("prometheus", argv, log_dir or conf_dir.parent / "logs", cwd=conf_dir, console=console)
    url = f"http://{HOST}:{port}"
    child.extra.update(url=url, port=port)
    return wait_ready(child, lambda: http_ok(f"{url}/-/ready"), ready_timeout_s, f"{url}/-/ready")
