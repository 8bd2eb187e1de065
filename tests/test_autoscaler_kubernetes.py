"""The Kubernetes scaler through the real `kubernetes` client, against a local HTTP server.

No cluster can run here: tests/fake_kube.py stands in for the part of the apps/v1 API the scaler uses. It
stands in for the cluster only; the client, its serialization and its HTTP are the real ones.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from autoscaler.kubernetes_scaler import KubernetesScaler, build_apps_api
from autoscaler.scalers import FatalScalerError, ScalerError, ScalerStatus
from tests.fake_kube import BASE, NAME, NS, FakeAppsApi

@pytest.fixture
def api():
    fake = FakeAppsApi()
    yield fake
    fake.close()


def make_scaler(fake: FakeAppsApi, **kwargs) -> tuple[KubernetesScaler, list[float]]:
    configuration = client.Configuration(host=fake.url)
    sleeps: list[float] = []
    kwargs.setdefault("timeout_s", 5)
    scaler = KubernetesScaler(client.AppsV1Api(client.ApiClient(configuration)), NS, NAME,
                              sleep=sleeps.append, **kwargs)
    return scaler, sleeps


def test_status_reads_the_scale_and_the_deployment(api):
    scaler, _ = make_scaler(api)
    assert scaler.status() == ScalerStatus(current=2, ready=2, live=3)
    assert [(r["method"], r["path"]) for r in api.requests] == [("GET", f"{BASE}/scale"), ("GET", BASE)]


def test_set_replicas_patches_the_scale_subresource(api):
    scaler, _ = make_scaler(api)
    scaler.status()
    scaler.set_replicas(5)
    patch = api.requests[-1]
    assert (patch["method"], patch["path"]) == ("PATCH", f"{BASE}/scale")
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["body"] == {"spec": {"replicas": 5}, "metadata": {"resourceVersion": "7"}}
    assert api.replicas == 5


def test_conflict_rereads_and_retries(api):
    scaler, _ = make_scaler(api)
    scaler.status()

    def someone_else_scales():
        api.replicas, api.rv = 3, api.rv + 1

    api.before_patch = someone_else_scales
    scaler.set_replicas(4)
    calls = [(r["method"], r["path"]) for r in api.requests[2:]]
    assert calls == [("PATCH", f"{BASE}/scale"), ("GET", f"{BASE}/scale"), ("PATCH", f"{BASE}/scale")]
    assert api.requests[-1]["body"]["metadata"] == {"resourceVersion": "8"}
    assert api.replicas == 4


@pytest.mark.parametrize("method,code,needle", [
    ("GET", 403, "verbs: [get, patch]"),
    ("PATCH", 403, "resources: [deployments/scale]"),
    ("GET", 401, "service-account token"),
], ids=["get-forbidden", "patch-forbidden", "unauthorized"])
def test_refused_credentials_are_reported_at_once_not_fatal(api, method, code, needle):
    """RBAC can be fixed and tokens rotate while the autoscaler runs: it says what to fix and tries again
    at its next poll (backing off), instead of exiting into a crash loop."""
    scaler, sleeps = make_scaler(api)
    if method == "PATCH":
        scaler.status()
    api.forced = [(method, code)]
    with pytest.raises(ScalerError) as err:
        scaler.status() if method == "GET" else scaler.set_replicas(3)
    assert not isinstance(err.value, FatalScalerError)
    assert f"HTTP {code}" in str(err.value) and needle in str(err.value) and NS in str(err.value)
    assert sleeps == []  # not retried within the call: the same credentials would be refused again


def test_missing_deployment_is_fatal_and_named(api):
    configuration = client.Configuration(host=api.url)
    scaler = KubernetesScaler(client.AppsV1Api(client.ApiClient(configuration)), NS, "nope")
    with pytest.raises(FatalScalerError) as err:
        scaler.status()
    assert "Deployment 'nope' not found in namespace 'ml'" in str(err.value)


def test_server_error_is_retried_with_backoff(api):
    scaler, sleeps = make_scaler(api, backoff_s=0.5)
    api.forced = [("GET", 500), ("GET", 503)]
    assert scaler.status().current == 2
    assert sleeps == [0.5, 1.0]


def test_persistent_server_error_is_not_fatal(api):
    scaler, sleeps = make_scaler(api, attempts=3)
    api.forced = [("GET", 500)] * 3
    with pytest.raises(ScalerError) as err:
        scaler.status()
    assert not isinstance(err.value, FatalScalerError)
    assert "HTTP 500" in str(err.value) and "after 3 attempts" in str(err.value)


def test_timeout_is_not_fatal(api):
    scaler, _ = make_scaler(api, attempts=1, timeout_s=0.3)
    api.delay_s = 1.5
    with pytest.raises(ScalerError) as err:
        scaler.status()
    assert not isinstance(err.value, FatalScalerError)


def test_kubeconfig_is_used_outside_a_cluster(api, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": api.url}}],
        "users": [{"name": "me", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "me"}}]}))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    scaler = KubernetesScaler(build_apps_api(), NS, NAME)
    assert scaler.status().current == 2


def test_no_credentials_is_fatal(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FatalScalerError) as err:
        build_apps_api()
    assert "no Kubernetes credentials" in str(err.value)
