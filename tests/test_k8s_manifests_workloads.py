"""The Kubernetes manifests' workloads: the security policy every Deployment meets, and each one's settings.

Pod Security 'restricted', resources and probes for every workload, each rule also run on a broken copy;
which pods get an API token; the inference Deployment's shutdown, CPU, writable paths, probes and Service;
the autoscaler's Deployment and settings; every environment variable set is one the code reads. The
manifests are rendered as in tests/test_k8s_manifests.py, whose helpers and fixture these tests share.
"""

from __future__ import annotations

import copy

import pytest

from tests.test_k8s_manifests import _container, _find, rendered  # noqa: F401 - rendered: the fixture

WORKLOADS = ["resnet18-inference", "autoscaler", "prometheus"]


# --- reading objects --------------------------------------------------------------------------------------

def _env(deployment: dict, objects: list[dict]) -> dict[str, str | None]:
    """Environment the container gets: envFrom ConfigMaps first, then env (None for valueFrom)."""
    container = _container(deployment)
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(_find(objects, "ConfigMap", ref)["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


# --- security policy over every workload ----------------------------------------------------------------

def workload_violations(deployment: dict) -> list[str]:
    """Pod Security 'restricted' plus resources and probes, for every container of a Deployment."""
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']} is a hostPath")
    for c in pod.get("initContainers", []) + pod["containers"]:
        name = c["name"]
        sc = c.get("securityContext", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in c.get("resources", {}).get(kind, {}):
                    problems.append(f"{name}: no {resource} {kind[:-1]}")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                problems.append(f"{name}: no {probe}")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as uid 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities do not drop ALL")
        if sc.get("capabilities", {}).get("add"):
            problems.append(f"{name}: adds capabilities")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if c.get("imagePullPolicy") != "IfNotPresent":
            problems.append(f"{name}: imagePullPolicy is not IfNotPresent (images are built inside minikube)")
    return problems


@pytest.mark.parametrize("name", WORKLOADS)
def test_workload_meets_the_policy(rendered, name):
    assert workload_violations(_find(rendered, "Deployment", name)) == []


def _pod(d):
    return d["spec"]["template"]["spec"]


POLICY_BREAKAGES = [
    ("no-memory-limit", lambda d: _container(d)["resources"]["limits"].pop("memory"), "no memory limit"),
    ("no-cpu-request", lambda d: _container(d)["resources"]["requests"].pop("cpu"), "no cpu request"),
    ("no-readiness-probe", lambda d: _container(d).pop("readinessProbe"), "no readinessProbe"),
    ("no-liveness-probe", lambda d: _container(d).pop("livenessProbe"), "no livenessProbe"),
    ("root-allowed", lambda d: (_container(d)["securityContext"].pop("runAsNonRoot"),
                                _pod(d)["securityContext"].pop("runAsNonRoot")), "runAsNonRoot"),
    ("uid-0", lambda d: _container(d)["securityContext"].update(runAsUser=0), "uid 0"),
    ("privilege-escalation", lambda d: _container(d)["securityContext"].pop("allowPrivilegeEscalation"),
     "allowPrivilegeEscalation"),
    ("privileged", lambda d: _container(d)["securityContext"].update(privileged=True), "privileged"),
    ("capabilities-kept", lambda d: _container(d)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
     "drop ALL"),
    ("capability-added", lambda d: _container(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
     "adds capabilities"),
    ("seccomp-unconfined", lambda d: (_container(d)["securityContext"].pop("seccompProfile"),
                                      _pod(d)["securityContext"].update(seccompProfile={"type": "Unconfined"})),
     "seccompProfile"),
    ("writable-root", lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False), "writable"),
    ("host-network", lambda d: _pod(d).update(hostNetwork=True), "hostNetwork"),
    ("host-path", lambda d: _pod(d)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    ("pull-always", lambda d: _container(d).update(imagePullPolicy="Always"), "imagePullPolicy"),
]


@pytest.mark.parametrize("breakage,expected", [(b, e) for _, b, e in POLICY_BREAKAGES],
                         ids=[i for i, _, _ in POLICY_BREAKAGES])
def test_policy_check_catches(rendered, breakage, expected):
    broken = copy.deepcopy(_find(rendered, "Deployment", "autoscaler"))
    breakage(broken)
    problems = workload_violations(broken)
    assert any(expected in p for p in problems), problems


def test_only_the_components_that_call_the_api_get_a_token(rendered):
    inference = _pod(_find(rendered, "Deployment", "resnet18-inference"))
    assert inference.get("automountServiceAccountToken") is False
    assert _pod(_find(rendered, "Deployment", "autoscaler"))["serviceAccountName"] == "autoscaler"
    assert _pod(_find(rendered, "Deployment", "prometheus"))["serviceAccountName"] == "prometheus"


# --- the inference Deployment ---------------------------------------------------------------------------

def _seconds(env: dict, key: str, default: float) -> float:
    return float(env.get(key) or default)


def test_inference_shutdown_outlasts_every_request(rendered):
    """preStop pause + gunicorn's drain must fit in the grace period, and the drain must outlast a request."""
    from inference.config import ServiceConfig

    deployment = _find(rendered, "Deployment", "resnet18-inference")
    env = _env(deployment, rendered)
    defaults = ServiceConfig()
    request_timeout_s = _seconds(env, "REQUEST_TIMEOUT_S", defaults.request_timeout_s)
    graceful_s = _seconds(env, "GRACEFUL_TIMEOUT_S", defaults.graceful_timeout_s)
    command = _container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    grace_s = _pod(deployment)["terminationGracePeriodSeconds"]
    assert graceful_s > request_timeout_s
    assert grace_s > pre_stop_s + graceful_s, f"grace {grace_s}s < preStop {pre_stop_s}s + drain {graceful_s}s"


def test_inference_one_worker_one_thread_one_cpu(rendered):
    deployment = _find(rendered, "Deployment", "resnet18-inference")
    env = _env(deployment, rendered)
    resources = _container(deployment)["resources"]
    assert (env["WEB_CONCURRENCY"], env["TORCH_THREADS"]) == ("1", "1")
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"] == "1"
    # Requests equal to limits: Guaranteed QoS, the last class the kubelet evicts under memory pressure.
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert "replicas" not in deployment["spec"], "a replica count here would undo the autoscaler on every apply"


def _mount_paths(deployment: dict) -> dict[str, dict]:
    volumes = {v["name"]: v for v in _pod(deployment).get("volumes", [])}
    return {m["mountPath"]: volumes[m["name"]] for m in _container(deployment).get("volumeMounts", [])}


@pytest.mark.parametrize("name,paths", [
    ("resnet18-inference", ["/tmp", "PROMETHEUS_MULTIPROC_DIR"]),
    ("autoscaler", ["/tmp"]),
    ("prometheus", ["/prometheus"]),
], ids=["inference", "autoscaler", "prometheus"])
def test_writable_paths_are_empty_dirs(rendered, name, paths):
    """With a read-only root filesystem, every path the process writes must be an emptyDir."""
    deployment = _find(rendered, "Deployment", name)
    env = _env(deployment, rendered)
    mounts = _mount_paths(deployment)
    for path in paths:
        path = env.get(path, path) if path.isupper() else path
        assert path in mounts and "emptyDir" in mounts[path], f"{name}: {path} is not a writable emptyDir"


def _port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


@pytest.mark.parametrize("name,probe,path,port_env,default_port", [
    ("resnet18-inference", "startupProbe", "/readyz", "PORT", 8000),
    ("resnet18-inference", "readinessProbe", "/readyz", "PORT", 8000),
    ("resnet18-inference", "livenessProbe", "/healthz", "PORT", 8000),
    ("autoscaler", "readinessProbe", "/healthz", "METRICS_PORT", 9100),
    ("autoscaler", "livenessProbe", "/healthz", "METRICS_PORT", 9100),
    ("prometheus", "readinessProbe", "/-/ready", None, 9090),
    ("prometheus", "livenessProbe", "/-/healthy", None, 9090),
], ids=["inference-startup", "inference-readiness", "inference-liveness", "autoscaler-readiness",
        "autoscaler-liveness", "prometheus-readiness", "prometheus-liveness"])
def test_probe_targets_the_port_the_process_listens_on(rendered, name, probe, path, port_env, default_port):
    deployment = _find(rendered, "Deployment", name)
    container = _container(deployment)
    http = container[probe]["httpGet"]
    listens = int(_env(deployment, rendered).get(port_env) or default_port) if port_env else default_port
    assert http["path"] == path
    assert _port_number(container, http["port"]) == listens


@pytest.mark.parametrize("service,deployment,port", [
    ("resnet18-inference", "resnet18-inference", 8000),
    ("prometheus-service", "prometheus", 9090),
], ids=["inference", "prometheus"])
def test_nodeport_service_reaches_its_pods(rendered, service, deployment, port):
    svc = _find(rendered, "Service", service)
    dep = _find(rendered, "Deployment", deployment)
    assert svc["spec"]["type"] == "NodePort", "`minikube service NAME` needs a NodePort"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == port
    assert _port_number(_container(dep), svc_port["targetPort"]) == port


# --- the autoscaler Deployment --------------------------------------------------------------------------

def test_autoscaler_runs_alone_and_finds_prometheus_and_its_target(rendered):
    deployment = _find(rendered, "Deployment", "autoscaler")
    env = _env(deployment, rendered)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "two autoscalers must never overlap"
    assert env["SCALER"] == "kubernetes"
    assert env["PROMETHEUS_URL"] == "http://prometheus-service:9090"
    _find(rendered, "Service", "prometheus-service")
    assert _find(rendered, "Deployment", env["TARGET_DEPLOYMENT"])
    namespace_ref = next(e for e in _container(deployment)["env"] if e["name"] == "TARGET_NAMESPACE")
    assert namespace_ref["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_autoscaler_settings_pass_its_own_validation(rendered):
    from autoscaler.config import load_config

    env = {k: v for k, v in _env(_find(rendered, "Deployment", "autoscaler"), rendered).items() if v is not None}
    config = load_config([], environ=env, namespace_file="/nonexistent")
    assert (config.min_replicas, config.max_replicas) == (int(env["MIN_REPLICAS"]), int(env["MAX_REPLICAS"]))


# --- environment variables are ones the code reads ------------------------------------------------------

def env_vars_read_by(component: str) -> set[str]:
    """The variables each component's configuration class reads (the single place either reads them)."""
    import dataclasses

    if component == "inference":
        from inference.config import ServiceConfig
        return {f.metadata["env"] for f in dataclasses.fields(ServiceConfig)}
    from autoscaler.config import Config
    return {f.name.upper() for f in dataclasses.fields(Config)}


def unknown_env_vars(env: dict, component: str) -> set[str]:
    return set(env) - env_vars_read_by(component)


@pytest.mark.parametrize("deployment,component", [
    ("resnet18-inference", "inference"), ("autoscaler", "autoscaler")], ids=["inference", "autoscaler"])
def test_every_env_var_set_is_read_by_the_code(rendered, deployment, component):
    env = _env(_find(rendered, "Deployment", deployment), rendered)
    assert env, "no environment found"
    assert unknown_env_vars(env, component) == set()


@pytest.mark.parametrize("name,component", [
    ("TORCH_THREAD", "inference"),        # typo of TORCH_THREADS
    ("MAX_REPLICAS", "inference"),        # the autoscaler's, not the service's
    ("MAX_BATCH_SIZE", "autoscaler"),     # the service's, not the autoscaler's
    ("SCALE_DOWN_WINDOW_S", "autoscaler"),
], ids=["typo", "inference-gets-autoscaler-var", "autoscaler-gets-inference-var", "invented"])
def test_env_check_catches_unknown_variables(name, component):
    assert unknown_env_vars({name: "1"}, component) == {name}
