"""A stand-in for the part of the Kubernetes apps/v1 API the autoscaler's scaler uses.

No cluster can run here, so a small server speaks GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale
and GET of the Deployment, with resourceVersion conflicts and Status error bodies like the API server's, over
HTTP or HTTPS, optionally checking the bearer token as the API server does. It stands in for the cluster only;
the clients talking to it are the real ones.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler

from tests.support import LocalHTTPServer

NS, NAME = "ml", "resnet18-inference"
BASE = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
PATH_RE = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/?]+)(/scale)?(\?.*)?$")


class FakeAppsApi(LocalHTTPServer):
    def __init__(self, replicas: int = 2, ready: int = 2, token: str | None = None, ssl_context=None,
                 namespace: str = NS, name: str = NAME):
        self.replicas, self.ready, self.rv = replicas, ready, 7
        self.namespace, self.name = namespace, name
        self.token = token  # when set, a request without `Authorization: Bearer <token>` gets 401
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
                if fake.token is not None and (self.headers.get("Authorization") or "").lower() != f"bearer {fake.token}":
                    status, doc = 401, status_doc(401, "Unauthorized", "Unauthorized")
                else:
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

        super().__init__(Handler, ssl_context=ssl_context)

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
        if (ns, name) != (self.namespace, self.name):
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
        return {"name": self.name, "namespace": self.namespace, "resourceVersion": str(self.rv)}

    def scale_doc(self):
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": self.meta(),
                "spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas, "selector": f"app={self.name}"}}

    def deployment_doc(self):
        labels = {"app": self.name}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(),
                "spec": {"replicas": self.replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "inference", "image": "resnet18:latest"}]}}},
                "status": {"replicas": self.replicas + 1, "readyReplicas": self.ready,
                           "availableReplicas": self.ready}}


def status_doc(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
