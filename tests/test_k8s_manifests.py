"""The Kubernetes manifests: rendering, schema validation, security and RBAC policy, internal consistency.

No cluster can run where these tests run, so the manifests are checked the way a cluster would check
them first: rendered exactly as `kubectl apply -k k8s/` renders them (`kubectl kustomize`), validated
strictly against the official OpenAPI schemas of the oldest and the newest Kubernetes release
docs/kubernetes.md#run-on-minikube names, and held to the rules below. Every checker is also run on
deliberately broken copies, so each test is shown to be able to fail.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests import support

K8S = support.REPO / "k8s"
PROMETHEUS = support.REPO / "prometheus"
BASELINES = K8S / "baselines"

OLDEST_K8S = "1.30.0"
NEWEST_K8S = kubernetes_validate.latest_version()
K8S_VERSIONS = [OLDEST_K8S, NEWEST_K8S]

EXPECTED_OBJECTS = {
    ("Deployment", "resnet18-inference"), ("Service", "resnet18-inference"),
    ("ServiceAccount", "autoscaler"), ("Role", "autoscaler"), ("RoleBinding", "autoscaler"),
    ("ConfigMap", "autoscaler-config"), ("Deployment", "autoscaler"),
    ("ServiceAccount", "prometheus"), ("ClusterRole", "resnet18-prometheus"), ("RoleBinding", "prometheus"),
    ("ConfigMap", "prometheus-config"), ("Deployment", "prometheus"), ("Service", "prometheus-service"),
}
WORKLOADS = ["resnet18-inference", "autoscaler", "prometheus"]

# What the autoscaler may do through the API, as the project's design allows it.
AUTOSCALER_ALLOWED = {("apps", "deployments/scale"): {"get", "patch", "update"}, ("apps", "deployments"): {"get"}}
# kubernetes client methods -> (API group, resource, verb) they need.
CLIENT_METHOD_PERMISSIONS = {
    "read_namespaced_deployment_scale": ("apps", "deployments/scale", "get"),
    "patch_namespaced_deployment_scale": ("apps", "deployments/scale", "patch"),
    "replace_namespaced_deployment_scale": ("apps", "deployments/scale", "update"),
    "read_namespaced_deployment": ("apps", "deployments", "get"),
    "read_namespaced_deployment_status": ("apps", "deployments/status", "get"),
    "create_namespaced_event": ("", "events", "create"),
}


# --- reading objects --------------------------------------------------------------------------------------

def _name(obj: dict) -> str:
    name = obj["metadata"]["name"]
    # Generated ConfigMaps carry a content hash suffix (prometheus-config-abc123): compare the base name.
    if obj["kind"] == "ConfigMap" and re.fullmatch(r"prometheus-config-[a-z0-9]{10}", name):
        return "prometheus-config"
    return name


def _find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and _name(o) == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one container"
    return containers[0]


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


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifest_files() -> list[Path]:
    files = sorted(K8S.glob("*.yaml")) + sorted(BASELINES.glob("*.yaml")) + sorted(PROMETHEUS.glob("*.yaml"))
    return [f for f in files if f.name != "kustomization.yaml"]


def _schema_errors(objects: list[dict], version: str) -> list[str]:
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            detail = getattr(exc, "message", None) or str(exc)
            errors.append(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {detail}")
    return errors


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return support.kustomize_build(K8S)


# --- rendering and schemas ------------------------------------------------------------------------------

def test_kustomize_renders_exactly_the_system(rendered):
    got = {(o["kind"], _name(o)) for o in rendered}
    assert got == EXPECTED_OBJECTS, f"missing: {EXPECTED_OBJECTS - got}; unexpected: {got - EXPECTED_OBJECTS}"


def test_every_manifest_file_is_part_of_the_kustomization():
    """A file added to k8s/ but not listed would silently never be applied by `kubectl apply -k k8s/`."""
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    listed_prom = set(yaml.safe_load((PROMETHEUS / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    on_disk_prom = {p.name for p in PROMETHEUS.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk <= listed and "../prometheus" in listed, f"not listed in k8s/: {on_disk - listed}"
    assert on_disk_prom == listed_prom, f"prometheus/ files vs its kustomization: {on_disk_prom ^ listed_prom}"


def test_namespace_is_default_so_the_readme_commands_need_no_flag(rendered):
    namespaced = [o for o in rendered if o["kind"] not in ("ClusterRole", "ClusterRoleBinding")]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"default"}


def test_baselines_are_not_applied_with_the_system(rendered):
    assert not [o for o in rendered if o["kind"] == "HorizontalPodAutoscaler"], \
        "an HPA in k8s/ would fight the autoscaler over the replica count"


@pytest.mark.parametrize("version", K8S_VERSIONS, ids=[f"k8s-{v}" for v in K8S_VERSIONS])
def test_rendered_objects_validate_strictly(rendered, version):
    assert _schema_errors(rendered, version) == []


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(support.REPO)))
def test_each_file_validates_on_its_own(path):
    """`kubectl apply -f FILE` works file by file (kustomize only adds namespace and labels)."""
    docs = _docs(path)
    assert docs, f"{path} holds no object"
    for version in K8S_VERSIONS:
        assert _schema_errors(docs, version) == [], f"against {version}"


SCHEMA_BREAKAGES = [
    ("misspelt-field", lambda d: _container(d).update(imagePullPolicyy="IfNotPresent")),
    ("wrong-type", lambda d: d["spec"].update(replicas="two")),
    ("missing-required-container-name", lambda d: _container(d).pop("name")),
    ("container-port-not-a-number", lambda d: _container(d)["ports"][0].update(containerPort="http")),
    ("removed-api-version", lambda d: d.update(apiVersion="extensions/v1beta1")),
]


@pytest.mark.parametrize("breakage", [b for _, b in SCHEMA_BREAKAGES], ids=[i for i, _ in SCHEMA_BREAKAGES])
def test_strict_validation_rejects_a_broken_deployment(rendered, breakage):
    broken = copy.deepcopy(_find(rendered, "Deployment", "resnet18-inference"))
    breakage(broken)
    for version in K8S_VERSIONS:
        assert _schema_errors([broken], version), f"{version} accepted a broken manifest"


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


# --- RBAC -----------------------------------------------------------------------------------------------

def rbac_wildcards(objects: list[dict]) -> list[str]:
    found = []
    for obj in objects:
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in obj.get("rules", []):
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if "*" in rule.get(key, []) or any("*" in str(v) for v in rule.get(key, [])):
                    found.append(f"{obj['kind']}/{obj['metadata']['name']}: {key} has a wildcard")
    return found


def test_no_rbac_wildcards(rendered):
    assert rbac_wildcards(rendered) == []


@pytest.mark.parametrize("key", ["apiGroups", "resources", "verbs"])
def test_wildcard_check_catches(rendered, key):
    role = copy.deepcopy(_find(rendered, "Role", "autoscaler"))
    role["rules"][0][key] = ["*"]
    assert rbac_wildcards([role])


def _granted(role: dict) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def _autoscaler_client_calls() -> set[str]:
    source = "\n".join(p.read_text() for p in (support.REPO / "autoscaler").glob("*.py"))
    return {m for m in CLIENT_METHOD_PERMISSIONS if re.search(rf"\b{m}\b", source)}


def test_autoscaler_role_grants_what_its_code_calls_and_no_more(rendered):
    granted = _granted(_find(rendered, "Role", "autoscaler"))
    calls = _autoscaler_client_calls()
    assert calls, "no kubernetes client call found in autoscaler/: has the scaler moved?"
    needed: dict[tuple[str, str], set[str]] = {}
    for method in calls:
        group, resource, verb = CLIENT_METHOD_PERMISSIONS[method]
        needed.setdefault((group, resource), set()).add(verb)
    for target, verbs in needed.items():
        assert verbs <= granted.get(target, set()), f"the autoscaler calls {target} {verbs}: RBAC would deny it"
    allowed = dict(AUTOSCALER_ALLOWED)
    if "create_namespaced_event" in calls:
        allowed[("", "events")] = {"create"}
    for target, verbs in granted.items():
        assert verbs <= allowed.get(target, set()), f"the autoscaler's Role grants {target} {verbs}: too much"
        if target in needed or target in AUTOSCALER_ALLOWED:
            continue
        raise AssertionError(f"{target} is granted but never used")


def test_autoscaler_role_reaches_only_its_target(rendered):
    role = _find(rendered, "Role", "autoscaler")
    config = _find(rendered, "ConfigMap", "autoscaler-config")["data"]
    for rule in role["rules"]:
        assert rule.get("resourceNames") == [config["TARGET_DEPLOYMENT"]], rule


def test_autoscaler_has_no_cluster_wide_permission(rendered):
    def binds_autoscaler(binding):
        return any(s["kind"] == "ServiceAccount" and s["name"] == "autoscaler" for s in binding.get("subjects", []))

    bindings = [o for o in rendered if o["kind"] in ("RoleBinding", "ClusterRoleBinding") and binds_autoscaler(o)]
    assert [b["metadata"]["name"] for b in bindings] == ["autoscaler"]
    assert bindings[0]["kind"] == "RoleBinding"
    assert bindings[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "autoscaler"}


def test_prometheus_may_only_read_pods_in_its_namespace(rendered):
    role = _find(rendered, "ClusterRole", "resnet18-prometheus")
    assert _granted(role) == {("", "pods"): {"get", "list", "watch"}}
    binding = _find(rendered, "RoleBinding", "prometheus")
    assert binding["roleRef"]["name"] == "resnet18-prometheus"
    assert not [o for o in rendered if o["kind"] == "ClusterRoleBinding"]
    assert [s["namespace"] for s in binding["subjects"]] == ["default"]


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


# --- HPA baselines --------------------------------------------------------------------------------------

@pytest.mark.parametrize("file,target", [("hpa-cpu50.yaml", 50), ("hpa-cpu90.yaml", 90)], ids=["cpu50", "cpu90"])
def test_hpa_baseline_matches_the_autoscalers_bounds(rendered, file, target):
    (hpa,) = _docs(BASELINES / file)
    config = _find(rendered, "ConfigMap", "autoscaler-config")["data"]
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "resnet18-inference"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (int(config["MIN_REPLICAS"]), int(config["MAX_REPLICAS"]))
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": target}
    # One name for both: applying the other baseline replaces this one instead of adding a second HPA.
    assert hpa["metadata"]["name"] == "resnet18-inference"


@pytest.mark.parametrize("path", [K8S / "autoscaler-rbac.yaml", PROMETHEUS / "prometheus-rbac.yaml"],
                         ids=["autoscaler", "prometheus"])
def test_binding_subjects_name_their_namespace_in_the_files(path):
    """The API server rejects a ServiceAccount subject without a namespace under `kubectl apply -f`."""
    bindings = [d for d in _docs(path) if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings
    for binding in bindings:
        for subject in binding["subjects"]:
            assert subject.get("namespace"), f"{path.name}: subject {subject['name']} has no namespace"
