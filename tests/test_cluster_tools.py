"""What a cluster user is given: the capacity probe's values as the autoscaler's env file, merged into its
ConfigMap the documented way (kustomize), and the autoscaler run on a laptop with the ConfigMap's values by
the very command docs/kubernetes.md shows.

No cluster runs here: the probe measures the load tester's stub server, `kubectl kustomize` renders k8s/
exactly as `kubectl apply -k` would, and a stand-in for the API server (tests/fake_kube.py's, plus discovery
and the ConfigMap) answers the real kubectl and the autoscaler's real Kubernetes client.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from autoscaler.config import Config, ConfigError
from settings import read_values, specs
from support import PYTHON, REPO, free_port, kubectl_binary, kustomize_build, start_stub_server, wait_until
from tests.fake_kube import FakeAppsApi

ENV_FILE = "autoscaler-measured.env"
CONFIG_YAML = REPO / "k8s" / "autoscaler-config.yaml"
DOC = REPO / "docs" / "kubernetes.md"
LINE = re.compile(r"^[A-Z][A-Z0-9_]*=[^\s#'\"]+$")


def configmap_keys() -> set[str]:
    return set(yaml.safe_load(CONFIG_YAML.read_text())["data"])


def autoscaler_variables() -> set[str]:
    return {spec.env for spec in specs(Config)}


def problems(env: dict[str, str]) -> list[str]:
    """Why `env` could not configure the deployed autoscaler: a key its settings do not read or the ConfigMap
    does not hold (kustomize's merge would add it silently), or a value its settings refuse."""
    out = [f"{key}: not a setting of the autoscaler" for key in env if key not in autoscaler_variables()]
    out += [f"{key}: not a key of k8s/autoscaler-config.yaml" for key in env if key not in configmap_keys()]
    try:
        read_values(Config, env, error=ConfigError)
    except ConfigError as exc:
        out.append(str(exc))
    return out


def read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines and all(LINE.match(line) for line in lines), f"not KEY=VALUE lines: {lines}"
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """The probe's files after measuring a stand-in for one replica that serves 40 req/s."""
    tmp = tmp_path_factory.mktemp("probe")
    stub = start_stub_server(tmp, capacity_rps=40, queue_limit=1000)
    try:
        proc = subprocess.run([PYTHON, "loadtester/load_tester.py", "--find-capacity", "--url", stub.extra["url"],
                               "--step-seconds", "1", "--json", str(tmp / "capacity.json"), "--env-file",
                               str(tmp / ENV_FILE), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=180)
    finally:
        stub.stop()
    assert proc.returncode == 0, proc.stderr
    return {"env_file": tmp / ENV_FILE, "stdout": proc.stdout,
            "report": json.loads((tmp / "capacity.json").read_text())}


def test_the_probe_writes_the_autoscalers_values_as_an_env_file(probed):
    env = read_env_file(probed["env_file"])
    rec = probed["report"]["recommendations"]
    assert env == {"CAPACITY_RPS_PER_REPLICA": f"{rec['capacity_rps_per_replica']:g}",
                   "TARGET_INFLIGHT_PER_REPLICA": f"{rec['target_inflight_per_replica']:g}", "SLO_P95_MS": "500"}
    assert 20 < float(env["CAPACITY_RPS_PER_REPLICA"]) <= 40
    # The console shows the same values.
    for key, value in env.items():
        assert f"    {key}={value}" in probed["stdout"]
    assert f"autoscaler values: {probed['env_file']}" in probed["stdout"]


def test_the_env_file_configures_the_autoscaler(probed):
    env = read_env_file(probed["env_file"])
    assert problems(env) == []
    values = read_values(Config, env, error=ConfigError)
    assert {spec.env for spec in specs(Config) if spec.name in values} == set(env)
    assert values["capacity_rps_per_replica"] == float(env["CAPACITY_RPS_PER_REPLICA"])
    assert values["target_inflight_per_replica"] == float(env["TARGET_INFLIGHT_PER_REPLICA"])


@pytest.mark.parametrize("env,words", [
    ({"TARGET_INFLIGHT": "3"}, "TARGET_INFLIGHT: not a setting of the autoscaler"),
    ({"STALL_AFTER_S": "100"}, "STALL_AFTER_S: not a key of k8s/autoscaler-config.yaml"),
    ({"CAPACITY_RPS_PER_REPLICA": "fast"}, "CAPACITY_RPS_PER_REPLICA='fast': expected a number"),
], ids=["misspelt-key", "key-the-configmap-lacks", "bad-value"])
def test_the_check_catches_a_key_or_value_the_autoscaler_would_not_take(env, words):
    assert any(words in problem for problem in problems(env)), problems(env)


def render_with(env_file: Path, tmp_path: Path) -> list[dict]:
    """k8s/ rendered as `kubectl apply -k k8s/` renders it, with `env_file` where the probe writes it."""
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    shutil.copytree(REPO / "prometheus", tmp_path / "prometheus")
    shutil.copy(env_file, tmp_path / "k8s" / ENV_FILE)
    return kustomize_build(tmp_path / "k8s")


def autoscaler_configmap(objects: list[dict]) -> dict:
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "autoscaler-config"]
    return configmap


def test_kustomize_merges_the_env_file_into_the_autoscalers_configmap(probed, tmp_path):
    env = read_env_file(probed["env_file"])
    objects = render_with(probed["env_file"], tmp_path)
    data = autoscaler_configmap(objects)["data"]
    declared = yaml.safe_load(CONFIG_YAML.read_text())["data"]
    assert set(data) == set(declared), "the merge adds or drops no key"
    assert {k: v for k, v in data.items() if k in env} == env
    assert {k: v for k, v in data.items() if k not in env} == {k: v for k, v in declared.items() if k not in env}
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "autoscaler"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"configMapRef": {"name": "autoscaler-config"}} in container["envFrom"]


def test_an_empty_env_file_leaves_the_configmap_as_declared(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    data = autoscaler_configmap(render_with(empty, tmp_path))["data"]
    assert data == yaml.safe_load(CONFIG_YAML.read_text())["data"]


# --- the autoscaler on a laptop ------------------------------------------------------------------------------

class FakeCluster(FakeAppsApi):
    """tests/fake_kube.py's apps/v1 scale API in the namespace `default`, plus what `kubectl get configmap`
    asks for: discovery of the core group and one ConfigMap."""

    def __init__(self, configmap: dict):
        self.configmap = {**configmap, "metadata": {**configmap["metadata"], "namespace": "default"}}
        super().__init__(namespace="default")

    def respond(self, method, path, body):
        route = path.split("?", 1)[0]
        core = {
            "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
            "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
                 "verbs": ["get", "list"], "shortNames": ["cm"]}]},
            "/api/v1/namespaces/default/configmaps/autoscaler-config": self.configmap,
        }
        if method == "GET" and route in core:
            return 200, core[route]
        return super().respond(method, path, body)


def documented_laptop_command() -> str:
    """The `env $(kubectl get configmap ...) ... python -m autoscaler` command of docs/kubernetes.md."""
    text = DOC.read_text()
    match = re.search(r"^env \$\(kubectl get configmap autoscaler-config .*?\\\n.*-m autoscaler$", text, re.M)
    assert match, "docs/kubernetes.md no longer shows the laptop command"
    return match.group(0).replace("\\\n", " ")


def test_the_documented_laptop_command_runs_the_autoscaler_with_the_configmaps_values(probed, tmp_path):
    configmap = autoscaler_configmap(render_with(probed["env_file"], tmp_path / "render"))
    cluster = FakeCluster(configmap)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "minikube",
        "clusters": [{"name": "minikube", "cluster": {"server": cluster.url}}],
        "users": [{"name": "minikube", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "minikube", "context": {"cluster": "minikube", "user": "minikube"}}]}))
    command = documented_laptop_command()
    assert "PROMETHEUS_URL=http://127.0.0.1:9090 .venv/bin/python" in command
    # Where this machine differs from a laptop: no Prometheus on :9090 (the autoscaler holds without data,
    # which is all this needs) and ports chosen free; the interpreter is the test's.
    command = command.replace("http://127.0.0.1:9090", f"http://127.0.0.1:{free_port()}")
    command = command.replace(".venv/bin/python", f"METRICS_PORT={free_port()} {PYTHON}")
    env = {"PATH": f"{Path(kubectl_binary()).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "autoscaler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: '"event":"decision"' in log.read_text() or proc.poll() is not None, timeout_s=120,
                   what="the autoscaler's first decision")
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        cluster.close()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    config = records[0]
    assert config["event"] == "config"
    data = configmap["data"]
    # The ConfigMap's values, not the laptop's defaults (MAX_REPLICAS 10, CAPACITY_RPS_PER_REPLICA 10).
    assert (config["max_replicas"], config["policy"], config["scaler"]) == (int(data["MAX_REPLICAS"]), "slo",
                                                                            "kubernetes")
    assert config["max_replicas"] != Config().max_replicas
    probe_env = read_env_file(probed["env_file"])
    assert config["capacity_rps_per_replica"] == float(probe_env["CAPACITY_RPS_PER_REPLICA"])
    assert config["target_inflight_per_replica"] == float(probe_env["TARGET_INFLIGHT_PER_REPLICA"])
    # It scaled through the kubeconfig: it read the Deployment's scale from the API server it names.
    assert ("GET", "/apis/apps/v1/namespaces/default/deployments/resnet18-inference/scale") in {
        (r["method"], r["path"]) for r in cluster.requests}
    decision = next(r for r in records if r.get("event") == "decision")
    assert decision["current"] == cluster.replicas
