"""podman as the image tests drive it: storage and settings of its own, and pod specs turned into podman terms.

No cluster and no registry here. The tests build the images with `python -m containers build` (as `make images`
does) on a stand-in base image (containers/standin-base.sh), and run pods with `podman kube play` from the
rendered manifests; where kube play cannot express what a kubelet does (a service-account token mount, the
service environment variables), `podman run` gets exactly the pod spec's user, read-only root, capabilities,
environment, emptyDir mounts and limits, derived here from the rendered Deployment.

Everything podman keeps lives under the per-machine cache (IMAGE_CACHE_DIR, default
~/.cache/resnet18-inference/images): later runs reuse the base image and the build's layers; the layers
of earlier builds are pruned after each build, so the cache stays near the size of one build (about 6 GB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from containers.__main__ import BASE_IMAGE
from tests.support import REPO

CACHE = Path(os.environ.get("IMAGE_CACHE_DIR")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resnet18-inference" / "images")
# Limits at or below what this machine allows (podman's own defaults are refused in sandboxes), the runc
# runtime (crun cannot run where cgroups are in hybrid mode), and no systemd to talk to.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# Free space a build needs: the runtime image's steps after the dependencies, each a full copy under vfs.
BUILD_SPACE_GIB = 5
STORAGE_CONF = """[storage]
driver = "vfs"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""


def available() -> str | None:
    """Why the image tests cannot run here, or None when they can."""
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install podman runc catatonit debootstrap)"
    if os.geteuid() != 0:
        return "the image tests run podman as root (rootless needs subordinate ids set up)"
    return None


def environment() -> dict[str, str]:
    root = CACHE / "podman"
    root.mkdir(parents=True, exist_ok=True)
    (root / "containers.conf").write_text(CONTAINERS_CONF)
    (root / "storage.conf").write_text(STORAGE_CONF.format(root=root))
    return {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"), "CONTAINER_ENGINE": "podman"}


def podman(env: dict[str, str], *args: str, timeout_s: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout_s)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


def build_images(env: dict[str, str], log: Path) -> None:
    """The stand-in base (once per machine), then both images as `make images` builds them."""
    prune(env)  # what an earlier run left behind, should it have stopped before its own prune
    free_gib = shutil.disk_usage(CACHE).free / 2**30
    if free_gib < BUILD_SPACE_GIB:
        raise AssertionError(f"building the images needs about {BUILD_SPACE_GIB} GiB free under {CACHE} "
                             f"(vfs copies every layer); {free_gib:.1f} GiB are free")
    if podman(env, "image", "exists", f"docker.io/library/{BASE_IMAGE}", check=False).returncode != 0:
        with open(log, "ab") as out:
            subprocess.run([str(REPO / "containers" / "standin-base.sh"), BASE_IMAGE, str(CACHE)], env=env,
                           stdout=out, stderr=subprocess.STDOUT, check=True, timeout=900)
    with open(log, "ab") as out:
        done = subprocess.run([sys.executable, "-m", "containers", "build", "--engine", "podman", "--weights", "random"],
                              cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
    if done.returncode != 0:
        raise AssertionError(f"python -m containers build failed; the end of {log}:\n{log.read_text()[-4000:]}")
    prune(env)


def prune(env: dict[str, str]) -> None:
    """Remove images no tag leads to. The vfs driver stores every layer as a full copy: the chains of
    earlier builds, untagged by the next one, would grow the cache by gigabytes per code change. The current
    images' layers stay, and the next build reuses them."""
    podman(env, "image", "prune", "--force", timeout_s=900)


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def environment_of(deployment: dict, configmaps: dict[str, dict], namespace: str) -> dict[str, str]:
    """The container's environment as a kubelet builds it: envFrom ConfigMaps, then env (literal values and
    the pod's namespace from the downward API)."""
    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[item["name"]] = namespace
        else:
            raise AssertionError(f"no stand-in for the env source of {item['name']}: {item}")
    return env


def run_args(deployment: dict, env: dict[str, str], mounts: list[str]) -> list[str]:
    """`podman run` options that give the container what its pod spec says (host network: the tests' peers
    listen on 127.0.0.1)."""
    pod = deployment["spec"]["template"]["spec"]
    spec = container(deployment)
    context = {**pod.get("securityContext", {}), **spec.get("securityContext", {})}
    args = ["--network", "host", "--user", f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in context.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            raise AssertionError(f"no stand-in for volume {volume}")
        size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
        args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
    limits = spec.get("resources", {}).get("limits", {})
    if "memory" in limits:
        args += ["--memory", limits["memory"].replace("Mi", "m")]
    if "cpu" in limits:
        cpu = limits["cpu"]
        args += ["--cpus", str(int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    for mount in mounts:
        args += ["--volume", mount]
    return [*args, spec["image"], *spec.get("args", [])]
