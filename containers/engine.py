"""The container engine `make images` and the image tests drive: docker where a daemon answers, else podman.

Every build and run gets nproc/nofile limits of at most 4096 and no higher than this process's own: engines
default to far higher ones (podman as root: a million files), which a sandbox or a locked-down host refuses
outright (some refused even values below their own limits, from 65536 up). 4096 is far above what a build
step or a pod uses (one gunicorn worker has about 40 threads and as many sockets).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field


LIMIT = 4096


class EngineError(RuntimeError):
    """No usable engine, or one of its commands failed; the message says which and what to do."""


def ulimit_args() -> list[str]:
    args = []
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, _hard = resource.getrlimit(which)
        value = LIMIT if soft == resource.RLIM_INFINITY else min(soft, LIMIT)
        args += ["--ulimit", f"{name}={value}:{value}"]
    return args


@dataclass(frozen=True)
class Engine:
    name: str
    # Global options before the subcommand (e.g. podman --root ...), from CONTAINER_ENGINE_ARGS.
    global_args: tuple[str, ...] = field(default=())

    def command(self, *args: str) -> list[str]:
        return [self.name, *self.global_args, *args]

    def run(self, *args: str, capture: bool = False, timeout_s: float = 3600) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), capture_output=capture, text=True, timeout=timeout_s)
        if done.returncode != 0:
            detail = f": {(done.stderr or '').strip()[-2000:]}" if capture else " (its output is above)"
            raise EngineError(f"`{' '.join(self.command(*args[:2]))} ...` failed with status {done.returncode}{detail}")
        return done

    def has_image(self, tag: str) -> bool:
        return subprocess.run(self.command("image", "inspect", tag), capture_output=True).returncode == 0

    def image_size_bytes(self, tag: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", tag, capture=True).stdout.split()[0])

    def build(self, dockerfile: str, tag: str, build_args: dict[str, str], context: str = ".") -> None:
        args = ["build", *ulimit_args(), "-f", dockerfile, "-t", tag]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        self.run(*args, context)

    def ensure_base(self, tag: str) -> None:
        """The base image, pulled if missing; where nothing can be pulled, say how to build a stand-in."""
        if self.has_image(tag):
            return
        if subprocess.run(self.command("pull", tag)).returncode != 0:
            raise EngineError(f"the base image {tag} is not here and cannot be pulled. Without a registry, build a "
                              f"stand-in from Debian's packages: containers/standin-base.sh {tag} (needs root, "
                              "debootstrap and podman; docs/kubernetes.md)")


def detect(preferred: str | None = None) -> Engine:
    """CONTAINER_ENGINE (docker or podman) if set, else docker if its daemon answers, else podman."""
    extra = tuple(os.environ.get("CONTAINER_ENGINE_ARGS", "").split())
    name = preferred or os.environ.get("CONTAINER_ENGINE")
    if name:
        if shutil.which(name) is None:
            raise EngineError(f"CONTAINER_ENGINE={name} is not on PATH")
        return Engine(name, extra)
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return Engine("docker", extra)
    if shutil.which("podman"):
        return Engine("podman", extra)
    raise EngineError("no container engine: install Docker (and start its daemon) or podman "
                      "(Debian/Ubuntu: apt-get install podman)")
