"""The Kubernetes manifests: rendering, schema validation, RBAC policy, the HPA baselines.

No cluster can run where these tests run, so the manifests are checked the way a cluster would check
them first: rendered exactly as `kubectl apply -k k8s/` renders them (`kubectl kustomize`), validated
strictly against the official OpenAPI schemas of the oldest and the newest Kubernetes release
docs/kubernetes.md#run-on-minikube names, and held to the rules below. Every checker is also run on
deliberately broken copies, so each test is shown to be able to fail. The workloads (security policy, each
Deployment's settings, the environment variables they set) are checked in tests/test_k8s_manifests_workloads.py.
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
