"""The Kubernetes scaler through the real `kubernetes` client, against a local HTTP server.

No cluster can run here, so a small server speaks the part of the apps/v1 API the scaler uses -
GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale and GET of the Deployment, with
resourceVersion conflicts and Status error bodies like the API server's. It stands in for the cluster
only; the client, its serialization and its HTTP are the real ones.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler

import pytest
from kubernetes import client

from autoscaler.kubernetes_scaler import KubernetesScaler, build_apps_api
from autoscaler.scalers import FatalScalerError, ScalerError, ScalerStatus
from tests.support import LocalHTTPServer

NS, NAME = "ml", "resnet18-inference"
BASE = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
PATH_RE = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/?]+)(/scale)?(\?.*)?$")


class FakeAppsApi(LocalHTTPServer):
    def __init__(self, replicas: int = 2, ready: int = 2):
        self.replicas, self.ready, self.rv = replicas, ready, 7
        self.requests: list[dict] = []
        self.forced: list[tuple[str, int]] = []   # (method, status) answered before the real handling
        self.delay_s = 0.0
        self.before_patch = None                  # hook: simulate a concurrent writer
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                fake.requests.append({"method": method, "path": self.path,
                                      "content_type": self.headers.get("Content-Type"),
                                      "body": json.loads(body) if body else None})
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                status, doc = fake.respond(method, self.path, json.loads(body) if body else None)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_PATCH(self):  # noqa: N802
                self._handle("PATCH")

        super().__init__(Handler)

    # --- API behaviour ------------------------------------------------------------------------
    def respond(self, method, path, body):
        m = PATH_RE.match(path)
        if not m:
            return 404, status_doc(404, "NotFound", f"the server could not find {path}")
        ns, name, scale = m.group(1), m.group(2), bool(m.group(3))
        if self.forced and self.forced[0][0] == method:
            code = self.forced.pop(0)[1]
            reason = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 500: "InternalError"}.get(code, "Error")
            return code, status_doc(code, reason, f"forced {code}")
        if (ns, name) != (NS, NAME):
            return 404, status_doc(404, "NotFound", f'deployments.apps "{name}" not found')
        if method == "GET":
            return 200, self.scale_doc() if scale else self.deployment_doc()
        if method == "PATCH" and scale:
            if self.before_patch:
                self.before_patch()
                self.before_patch = None
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv is not None and want_rv != str(self.rv):
                return 409, status_doc(409, "Conflict", "the object has been modified; please apply your "
                                                        "changes to the latest version and try again")
            self.replicas = body["spec"]["replicas"]
            self.rv += 1
            return 200, self.scale_doc()
        return 405, status_doc(405, "MethodNotAllowed", method)

    def meta(self):
        return {"name": NAME, "namespace": NS, "resourceVersion": str(self.rv)}

    def scale_doc(self):
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": self.meta(),
                "spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas, "selector": f"app={NAME}"}}

    def deployment_doc(self):
        labels = {"app": NAME}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(),
                "spec": {"replicas": self.replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "inference", "image": "resnet18:latest"}]}}},
                "status": {"replicas": self.replicas + 1, "readyReplicas": self.ready,
                           "availableReplicas": self.ready}}


def status_doc(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


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
    ("GET", 401, "RoleBinding"),
], ids=["get-forbidden", "patch-forbidden", "unauthorized"])
def test_forbidden_is_fatal_and_names_the_rbac_rule(api, method, code, needle):
    scaler, _ = make_scaler(api)
    if method == "PATCH":
        scaler.status()
    api.forced = [(method, code)]
    with pytest.raises(FatalScalerError) as err:
        scaler.status() if method == "GET" else scaler.set_replicas(3)
    assert needle in str(err.value) and f"namespace {NS}" in str(err.value)


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
