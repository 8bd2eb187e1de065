"""Both images built as `make images` builds them, and run as their pods run them, with podman.

No cluster and no registry here (tests/podman.py says what stands in for what): the base image is a
stand-in built from Debian's packages (containers/standin-base.sh: Debian's Python 3.11.2 instead of the
official image's own build, about 70 MB larger), the inference pod runs through `podman kube play` from
the rendered manifests with the documented random-weights patch, and the autoscaler runs with `podman run`
under exactly its pod spec, an in-cluster service-account mount, a local HTTPS apps/v1 server
(tests/fake_kube.py) and a real Prometheus. kube play turns the liveness probe into a healthcheck that needs
systemd (absent here) and ignores the readiness and startup probes and preStop: the test polls the
readiness probe's path itself. The first run builds the base and both images (about 6 minutes); later runs
reuse the per-machine cache (IMAGE_CACHE_DIR).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from inference.model import Classifier
from inference.preprocess import preprocess
from tests import podman
from tests.fake_kube import FakeAppsApi
from tests.support import (REPO, free_port, http_ok, kustomize_build, promtool_binary, start_gunicorn,
                           start_prometheus, wait_until)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(podman.available() is not None, reason=f"no podman: {podman.available()}")]

K8S = REPO / "k8s"
PHOTO = REPO / "loadtester" / "images" / "chelsea.jpg"
POD = "resnet18-inference-pod-0"  # what kube play names the first pod of the Deployment


def render(directory: Path, patches: list[Path]) -> list[dict]:
    """k8s/ as `kubectl apply -k` sends it, through an overlay of the given patch files (the documented way)."""
    directory.mkdir(parents=True, exist_ok=True)
    for patch in patches:
        shutil.copy(patch, directory / patch.name)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S, directory)], "patches": [{"path": p.name} for p in patches]}))
    return kustomize_build(directory)


def find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory):
    env = podman.environment()
    podman.build_images(env, tmp_path_factory.mktemp("images") / "build.log")
    return env


@pytest.fixture(scope="module")
def inference_pod(engine_env, tmp_path_factory):
    """The inference Deployment on random weights, its port published on 127.0.0.1 (the only change)."""
    tmp = tmp_path_factory.mktemp("inference-pod")
    deployment = find(render(tmp / "overlay", [K8S / "patches" / "random-weights.yaml"]), "Deployment",
                      "resnet18-inference")
    spec = podman.container(deployment)
    port = free_port()
    spec["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    manifest = tmp / "inference.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    podman.podman(engine_env, "pod", "rm", "--force", POD, check=False)
    started = time.monotonic()
    podman.podman(engine_env, "kube", "play", str(manifest), timeout_s=600)
    url = f"http://127.0.0.1:{port}"
    ready_path = spec["readinessProbe"]["httpGet"]["path"]

    def logs() -> str:
        return podman.podman(engine_env, "logs", f"{POD}-inference", check=False).stderr[-3000:]

    def running() -> bool:
        # kube play restarts a failed container (restartPolicy Always): a restart is the crash loop.
        state = podman.podman(engine_env, "inspect", "--format", "{{.State.Running}} {{.RestartCount}}",
                              f"{POD}-inference", check=False).stdout.split()
        if state != ["true", "0"]:
            raise AssertionError(f"the inference container stopped or restarted ({state}); its log:\n{logs()}")
        return True

    def ready() -> bool:
        try:
            return http_ok(url + ready_path)
        except requests.RequestException:  # not listening yet
            return False

    deadline = time.monotonic() + 300
    try:
        while not ready():  # wait_until would take a crash for "not yet"
            running()
            assert time.monotonic() < deadline, f"{ready_path} of the pod not ready after 300 s; its log:\n{logs()}"
            time.sleep(0.2)
    except AssertionError:
        podman.podman(engine_env, "kube", "down", str(manifest), check=False, timeout_s=120)
        raise
    yield {"url": url, "deployment": deployment, "ready_s": time.monotonic() - started, "logs": logs}
    podman.podman(engine_env, "kube", "down", str(manifest), check=False, timeout_s=120)
    volumes = [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]]
    podman.podman(engine_env, "volume", "rm", "--force", *volumes, check=False)


def test_the_pod_runs_as_its_spec_says(inference_pod, engine_env):
    user, read_only = podman.podman(engine_env, "inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
                                    f"{POD}-inference").stdout.split()
    assert (user, read_only) == ("10001:10001", "true")
    info = requests.get(f"{inference_pod['url']}/info", timeout=30).json()
    assert (info["weights"], info["model_threads"]) == ("random", 1)
    assert "converted model from the cache" in inference_pod["logs"]()


def test_the_pod_classifies_a_photo_as_the_local_service_does(inference_pod, tmp_path):
    answer = requests.post(f"{inference_pod['url']}/predict", data=PHOTO.read_bytes(),
                           headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    local = Classifier("random", backend=body["backend"], threads=1, cache_dir=tmp_path)
    expected = local.top_k(local.probabilities(preprocess(PHOTO.read_bytes(), 10**9)[None]), 5)[0]
    assert [p["index"] for p in body["predictions"]] == [p.index for p in expected]
    assert [p["score"] for p in body["predictions"]] == pytest.approx([p.score for p in expected], abs=1e-4)


def test_the_pods_metrics_pass_promtool(inference_pod):
    exposition = requests.get(f"{inference_pod['url']}/metrics", timeout=30).text
    check = subprocess.run([promtool_binary(), "check", "metrics"], input=exposition, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert 'inference_model_info{' in exposition and 'backend="' in exposition


def test_stopping_the_pod_finishes_the_request_in_flight(inference_pod, engine_env):
    """SIGTERM with the manifest's grace period, as a kubelet stops a pod; runs last in this module.

    The container is stopped, not the whole podman pod: a kubelet keeps the pod's network (its pause
    container) until the containers have exited, where `podman pod stop` takes it down at once."""
    url, grace = inference_pod["url"], inference_pod["deployment"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
    images = [("file", (f"{i}.jpg", PHOTO.read_bytes(), "image/jpeg")) for i in range(16)]
    answer: dict = {}

    def send() -> None:
        answer["response"] = requests.post(f"{url}/predict", files=images, timeout=120)

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: "inference_inflight_requests 1.0" in requests.get(f"{url}/metrics", timeout=10).text
               or not sender.is_alive(), timeout_s=60, interval_s=0.01, what="the request in flight")
    assert sender.is_alive(), "the request finished before the pod could be stopped: nothing was tested"
    podman.podman(engine_env, "stop", "--time", str(grace), f"{POD}-inference", timeout_s=grace + 60)
    sender.join(120)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 16
    exit_code = podman.podman(engine_env, "inspect", "--format", "{{.State.ExitCode}}", f"{POD}-inference").stdout
    assert exit_code.strip() == "0", inference_pod["logs"]()


def test_a_pod_serves_a_mounted_state_dict_as_the_docs_say(engine_env, tmp_path):
    """docs/kubernetes.md#choosing-the-weights, followed: a state dict and its conversion (made with the
    documented command) in a folder, mounted through k8s/patches/state-dict.yaml. Test-only changes: the
    hostPath points at that folder, the port is published, the Deployment is renamed beside the other pod."""
    import torch
    import torchvision

    folder = Path(tempfile.mkdtemp(prefix="resnet18-weights-"))
    try:
        os.chmod(folder, 0o755)
        torch.manual_seed(5)
        model = torchvision.models.resnet18(weights=None)
        for p in model.parameters():
            p.data.normal_(0, 0.05)
        torch.save(model.state_dict(), folder / "resnet18.pth")
        os.chmod(folder / "resnet18.pth", 0o644)
        subprocess.run([sys.executable, "-m", "inference.model", "--convert"], cwd=REPO, check=True, timeout=300,
                       env={**os.environ, "MODEL_WEIGHTS": str(folder / "resnet18.pth"),
                            "MODEL_CACHE_DIR": str(folder / "cache")}, capture_output=True)
        deployment = find(render(tmp_path / "overlay", [K8S / "patches" / "state-dict.yaml"]), "Deployment",
                          "resnet18-inference")
        deployment["metadata"]["name"] = "state-dict-test"
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "weights")
        volume["hostPath"]["path"] = str(folder)
        port = free_port()
        podman.container(deployment)["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
        manifest = tmp_path / "state-dict.yaml"
        manifest.write_text(yaml.safe_dump(deployment))
        podman.podman(engine_env, "kube", "play", str(manifest), timeout_s=600)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: http_ok(f"{url}/readyz"), timeout_s=300, what="the state-dict pod")
            body = requests.post(f"{url}/predict", data=PHOTO.read_bytes(), headers={"Content-Type": "image/jpeg"},
                                 timeout=60).json()
        finally:
            podman.podman(engine_env, "kube", "down", str(manifest), check=False, timeout_s=120)
        local = Classifier(str(folder / "resnet18.pth"), backend=body["backend"], threads=1,
                           cache_dir=folder / "cache")
        expected = local.top_k(local.probabilities(preprocess(PHOTO.read_bytes(), 10**9)[None]), 5)[0]
        assert body["weights"] == "file:/weights/resnet18.pth"
        assert [p["index"] for p in body["predictions"]] == [p.index for p in expected]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the autoscaler ---

@pytest.fixture
def shared_dir():
    """A folder the pod's user (10001) can read: pytest's own are private to root."""
    path = Path(tempfile.mkdtemp(prefix="autoscaler-pod-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def service_account(directory: Path, token: str) -> tuple[Path, ssl.SSLContext]:
    """What a kubelet mounts for a service account, with a self-signed API server certificate as the CA."""
    sa = directory / "serviceaccount"
    sa.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(directory / "server.key"),
                    "-out", str(sa / "ca.crt")], check=True, capture_output=True, timeout=60)
    (sa / "token").write_text(token)
    (sa / "namespace").write_text("default")
    for path in sa.iterdir():
        os.chmod(path, 0o644)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sa / "ca.crt", directory / "server.key")
    return sa, context


@pytest.mark.parametrize("mounted_token, outcome", [("good-token", "patches"), ("stale-token", "401-stays-up")],
                         ids=["in-cluster-patches-the-scale", "rejected-token-logged-and-stays-up"])
def test_the_autoscaler_image_as_its_pod_runs_it(engine_env, shared_dir, tmp_path, mounted_token, outcome):
    sa, tls = service_account(shared_dir, mounted_token)
    api = FakeAppsApi(replicas=0, ready=0, token="good-token", ssl_context=tls, namespace="default")
    # The service's metrics through a real Prometheus under the job name the autoscaler's queries use.
    service = start_gunicorn(tmp_path / "service")
    prometheus = start_prometheus(tmp_path, yaml.safe_dump({"scrape_configs": [{
        "job_name": "resnet18-inference", "scrape_interval": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{service.extra['port']}"]}]}]}))
    objects = kustomize_build(K8S)
    deployment = find(objects, "Deployment", "autoscaler")
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    env = podman.environment_of(deployment, configmaps, namespace="default")
    metrics_port = free_port()
    # What differs from a cluster: Prometheus and the API server are reached on 127.0.0.1, as a kubelet's
    # service variables and DNS would lead the pod to them; the metrics port is a free one.
    env.update(PROMETHEUS_URL=prometheus.extra["url"], METRICS_PORT=str(metrics_port),
               KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(api.port))
    name = f"autoscaler-test-{metrics_port}"
    args = podman.run_args(deployment, env, [f"{sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro"])
    podman.podman(engine_env, "run", "--detach", "--name", name, *args)

    def logs() -> str:
        done = podman.podman(engine_env, "logs", name, check=False)
        return done.stdout + done.stderr

    def wait_for(condition, what: str) -> None:
        try:
            wait_until(condition, timeout_s=120, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the autoscaler's log:\n{logs()[-3000:]}") from None

    try:
        if outcome == "patches":
            # Zero replicas asked for, below MIN_REPLICAS: the first decision with data raises it.
            wait_for(lambda: api.replicas == int(env["MIN_REPLICAS"]), "the scale patched to MIN_REPLICAS")
            patch = next(r for r in api.requests if r["method"] == "PATCH")
            assert patch["path"].endswith("/namespaces/default/deployments/resnet18-inference/scale")
        else:
            wait_for(lambda: logs().count("HTTP 401 Unauthorized") >= 2, "two 401 lines in the log")
            state = podman.podman(engine_env, "inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", logs()
            assert requests.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=10).status_code == 200
            assert api.replicas == 0 and "service-account token" in logs()
    finally:
        podman.podman(engine_env, "rm", "--force", "--time", "15", name, check=False, timeout_s=120)
        prometheus.stop()
        service.stop()
        api.close()
