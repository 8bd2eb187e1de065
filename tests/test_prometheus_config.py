"""Prometheus configuration: promtool checks of both configs and the rules, the rules' unit tests, and the
in-cluster service discovery's relabelling run for real.

Debian's Prometheus (the one installed here) is built without Kubernetes service discovery, so promtool
rejects `kubernetes_sd_configs` as an unknown field. The in-cluster config is therefore checked in two
parts: its `kubernetes_sd_configs` against the fields Prometheus documents for them, and everything else
(relabelling, rule files, intervals) by promtool and a real Prometheus after each Kubernetes discovery is
swapped for a file discovery that yields the same `__meta_kubernetes_*` labels a pod would have.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from tests import support

PROMETHEUS = support.REPO / "prometheus"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

# https://prometheus.io/docs/prometheus/latest/configuration/configuration/#kubernetes_sd_config
KUBERNETES_SD_FIELDS = {"api_server", "role", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
                        "basic_auth", "authorization", "oauth2", "proxy_url", "follow_redirects", "enable_http2",
                        "tls_config", "no_proxy", "proxy_from_environment", "proxy_connect_header"}
KUBERNETES_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
NAMESPACES_FIELDS = {"own_namespace", "names"}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run([support.promtool_binary(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def kubernetes_sd_problems(config: dict) -> list[str]:
    problems = []
    for job in config["scrape_configs"]:
        for sd in job.get("kubernetes_sd_configs", []):
            unknown = set(sd) - KUBERNETES_SD_FIELDS
            if unknown:
                problems.append(f"{job['job_name']}: unknown kubernetes_sd_configs fields {sorted(unknown)}")
            if sd.get("role") not in KUBERNETES_SD_ROLES:
                problems.append(f"{job['job_name']}: role {sd.get('role')!r} is not one of {sorted(KUBERNETES_SD_ROLES)}")
            namespaces = sd.get("namespaces", {})
            if set(namespaces) - NAMESPACES_FIELDS:
                problems.append(f"{job['job_name']}: unknown namespaces fields {sorted(set(namespaces) - NAMESPACES_FIELDS)}")
            if "own_namespace" in namespaces and not isinstance(namespaces["own_namespace"], bool):
                problems.append(f"{job['job_name']}: own_namespace must be true or false")
    return problems


def with_file_discovery(config: dict, targets_file: str) -> dict:
    """The same config with each kubernetes_sd_configs replaced by a file_sd reading `targets_file`."""
    swapped = json.loads(json.dumps(config))
    for job in swapped["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["file_sd_configs"] = [{"files": [targets_file]}]
    return swapped


def in_cluster_config() -> dict:
    return yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())


# --- promtool -------------------------------------------------------------------------------------------

def test_local_config_passes_promtool():
    result = promtool("check", "config", "prometheus-local.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_in_cluster_config_passes_promtool_with_discovery_swapped(tmp_path):
    (tmp_path / "rules.yml").write_text((PROMETHEUS / "rules.yml").read_text())
    (tmp_path / "pods.json").write_text("[]")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(with_file_discovery(in_cluster_config(), "pods.json")))
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_in_cluster_discovery_uses_only_documented_fields():
    config = in_cluster_config()
    assert [j["job_name"] for j in config["scrape_configs"]] == ["resnet18-inference", "autoscaler"]
    assert kubernetes_sd_problems(config) == []
    for job in config["scrape_configs"]:
        assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"own_namespace": True}}]


@pytest.mark.parametrize("sd,expected", [
    ({"role": "pods"}, "role 'pods'"),
    ({"role": "pod", "namespace": {"own_namespace": True}}, "unknown kubernetes_sd_configs fields"),
    ({"role": "pod", "namespaces": {"own": True}}, "unknown namespaces fields"),
    ({"role": "pod", "namespaces": {"own_namespace": "yes"}}, "own_namespace must be"),
], ids=["bad-role", "misspelt-namespaces", "misspelt-own-namespace", "own-namespace-not-bool"])
def test_discovery_check_catches(sd, expected):
    config = {"scrape_configs": [{"job_name": "x", "kubernetes_sd_configs": [sd]}]}
    assert any(expected in p for p in kubernetes_sd_problems(config))


def test_rules_pass_promtool():
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", UNIT_TESTS, ids=[p.name for p in UNIT_TESTS])
def test_rule_unit_tests_pass(path):
    result = promtool("test", "rules", str(path.relative_to(PROMETHEUS)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_cover_every_rule():
    rules = [r for g in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"] for r in g["rules"]]
    tested = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested.update(t["expr"] for t in case.get("promql_expr_test", []))
            tested.update(t["alertname"] for t in case.get("alert_rule_test", []))
    names = {r.get("record") or r.get("alert") for r in rules}
    assert names - tested == set(), "rules without a promtool unit test"


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path):
    """The unit tests compare exactly: one changed expected value must make promtool fail."""
    (tmp_path / "rules.yml").write_text((PROMETHEUS / "rules.yml").read_text())
    text = (PROMETHEUS / "tests" / "recording_rules_test.yml").read_text()
    assert "value: 0.95\n" in text
    (tmp_path / "t.yml").write_text(text.replace("../rules.yml", "rules.yml").replace("value: 0.95\n", "value: 0.96\n"))
    result = promtool("test", "rules", "t.yml", cwd=tmp_path)
    assert result.returncode != 0 and "p95_30s" in result.stdout + result.stderr


# --- local config targets -------------------------------------------------------------------------------

@pytest.mark.parametrize("job,address", [("resnet18-inference", "127.0.0.1:8000"), ("autoscaler", "127.0.0.1:9100")],
                         ids=["inference", "autoscaler"])
def test_local_config_targets_default_ports(job, address):
    config = yaml.safe_load((PROMETHEUS / "prometheus-local.yml").read_text())
    (scrape,) = [j for j in config["scrape_configs"] if j["job_name"] == job]
    (files,) = [sd["files"] for sd in scrape["file_sd_configs"]]
    groups = [g for f in files for g in json.loads((PROMETHEUS / f).read_text())]
    assert [t for g in groups for t in g["targets"]] == [address]


# --- relabelling, run by a real Prometheus --------------------------------------------------------------

def _pod(name: str, app: str, port_name: str, port: int, phase: str = "Running", ip: str = "10.244.0.9") -> dict:
    """One target group as Kubernetes pod discovery would emit it for one container port."""
    return {"targets": [f"{ip}:{port}"], "labels": {
        "__meta_kubernetes_namespace": "default",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_label_app": app,
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_number": str(port),
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_node_name": "minikube",
        "__meta_kubernetes_pod_ip": ip,
    }}


PODS = [
    _pod("resnet18-inference-a", "resnet18-inference", "http", 8000, ip="10.244.0.11"),
    _pod("resnet18-inference-b", "resnet18-inference", "http", 8000, ip="10.244.0.12"),
    # A second declared port must not become a second target.
    _pod("resnet18-inference-b", "resnet18-inference", "debug", 6060, ip="10.244.0.12"),
    # Finished pods keep their IP for a while: scraping them would only produce up == 0.
    _pod("resnet18-inference-old", "resnet18-inference", "http", 8000, phase="Failed", ip="10.244.0.13"),
    _pod("autoscaler-x", "autoscaler", "metrics", 9100, ip="10.244.0.14"),
    _pod("prometheus-y", "prometheus", "web", 9090, ip="10.244.0.15"),
    _pod("unrelated-z", "other", "http", 8000, ip="10.244.0.16"),
]


@pytest.mark.slow
def test_pod_discovery_keeps_exactly_the_services_pods(tmp_path):
    config = with_file_discovery(in_cluster_config(), "pods.json")
    config["global"]["scrape_interval"] = "1m"  # the targets do not exist: keep failed scrapes rare
    config["global"]["scrape_timeout"] = "1s"
    prom = support.start_prometheus(tmp_path, yaml.safe_dump(config), extra_files={
        "rules.yml": (PROMETHEUS / "rules.yml").read_text(), "pods.json": json.dumps(PODS)})
    try:
        def active():
            body = requests.get(f"{prom.extra['url']}/api/v1/targets", params={"state": "any"}, timeout=5).json()
            data = body["data"]
            return data if len(data["activeTargets"]) + len(data["droppedTargets"]) >= 2 * len(PODS) else None

        data = support.wait_until(active, timeout_s=60, what="Prometheus to load the discovered pods")
        got = sorted((t["labels"]["job"], t["labels"]["pod"], t["labels"]["instance"], t["labels"]["namespace"],
                      t["labels"]["node"]) for t in data["activeTargets"])
        assert got == [
            ("autoscaler", "autoscaler-x", "10.244.0.14:9100", "default", "minikube"),
            ("resnet18-inference", "resnet18-inference-a", "10.244.0.11:8000", "default", "minikube"),
            ("resnet18-inference", "resnet18-inference-b", "10.244.0.12:8000", "default", "minikube"),
        ]
        assert all(t["scrapeUrl"].endswith("/metrics") for t in data["activeTargets"])
    finally:
        prom.stop()
