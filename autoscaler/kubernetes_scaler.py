"""Scale a Deployment through its `deployments/scale` subresource with the official `kubernetes` client.

- read: GET .../deployments/{name}/scale (spec.replicas: the target) and GET .../deployments/{name}
  (status.readyReplicas, status.replicas);
- write: PATCH .../deployments/{name}/scale with a JSON merge patch carrying the resourceVersion that
  was read, so a concurrent change (kubectl scale, a rollout) answers 409 instead of being overwritten:
  the scale is then re-read and the patch retried;
- 5xx, 429 and network errors are retried with a short backoff, then reported (the loop backs off
  further and keeps running);
- 401 and 403 are reported at once with what to fix (the token, the RBAC rule), not retried within the
  call, and not fatal: RBAC can be applied and tokens rotate while the autoscaler runs, and exiting would
  only put its pod into a crash loop. The loop backs off and asks again;
- 404 (no such Deployment) is fatal: the configuration names the wrong target.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from .scaling import FatalScalerError, ScalerError, ScalerStatus

MERGE_PATCH = "application/merge-patch+json"
RBAC_HINT = ("the autoscaler's ServiceAccount needs a Role in namespace {ns} with the rules "
             "{{apiGroups: [apps], resources: [deployments], verbs: [get]}} and "
             "{{apiGroups: [apps], resources: [deployments/scale], verbs: [get, patch]}}, bound by a "
             "RoleBinding (see k8s/autoscaler-rbac.yaml)")


def build_apps_api():
    """AppsV1Api from the in-cluster service account, else from the kubeconfig (KUBECONFIG, ~/.kube/config)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            # KUBECONFIG is read now, not when the client library was imported.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        except Exception as exc:  # noqa: BLE001 - any failure here means "no credentials"
            raise FatalScalerError(
                "no Kubernetes credentials: not running in a pod with a service account, and no usable "
                f"kubeconfig ({exc}). Use SCALER=gunicorn or SCALER=dry-run outside a cluster.") from None
    return client.AppsV1Api()


class KubernetesScaler:
    def __init__(self, apps_api, namespace: str, name: str, timeout_s: float = 10.0, attempts: int = 3,
                 backoff_s: float = 0.5, sleep: Callable[[float], None] = time.sleep):
        self.api = apps_api
        self.namespace = namespace
        self.name = name
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.sleep = sleep
        self._resource_version: str | None = None

    def status(self) -> ScalerStatus:
        scale = self._call("get", self.api.read_namespaced_deployment_scale)
        deployment = self._call("get", self.api.read_namespaced_deployment)
        self._resource_version = scale.metadata.resource_version if scale.metadata else None
        st = deployment.status
        return ScalerStatus(current=(scale.spec.replicas or 0) if scale.spec else 0,
                            ready=(st.ready_replicas or 0) if st else 0,
                            live=(st.replicas or 0) if st else 0)

    def set_replicas(self, replicas: int) -> None:
        for _ in range(self.attempts):
            body: dict = {"spec": {"replicas": replicas}}
            if self._resource_version:
                body["metadata"] = {"resourceVersion": self._resource_version}
            try:
                self._call("patch", self.api.patch_namespaced_deployment_scale, body=body, _content_type=MERGE_PATCH)
                return
            except _Conflict:
                scale = self._call("get", self.api.read_namespaced_deployment_scale)
                self._resource_version = scale.metadata.resource_version if scale.metadata else None
                if scale.spec and scale.spec.replicas == replicas:
                    return
        raise ScalerError(f"patch of deployments/scale {self.namespace}/{self.name} kept conflicting "
                          f"({self.attempts} attempts)")

    def _call(self, verb: str, fn, **kwargs):
        from kubernetes.client.exceptions import ApiException

        last = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return fn(self.name, self.namespace, _request_timeout=self.timeout_s, **kwargs)
            except ApiException as exc:
                status = exc.status or 0
                if status == 409:
                    raise _Conflict() from None
                if status == 401:
                    raise ScalerError(
                        f"HTTP 401 Unauthorized to {verb} deployments/scale {self.namespace}/{self.name}: the API "
                        "server rejected the credentials (the pod's service-account token, or the kubeconfig's "
                        "user); check `kubectl get sa autoscaler` and that the token is mounted") from None
                if status == 403:
                    raise ScalerError(
                        f"HTTP 403 Forbidden to {verb} deployments/scale {self.namespace}/{self.name}: "
                        + RBAC_HINT.format(ns=self.namespace)) from None
                if status == 404:
                    raise FatalScalerError(
                        f"Deployment {self.name!r} not found in namespace {self.namespace!r}: deploy the service "
                        "(k8s/) or set TARGET_DEPLOYMENT / TARGET_NAMESPACE") from None
                if status >= 500 or status == 429:
                    last = f"{verb} {self.namespace}/{self.name}: HTTP {status} {exc.reason or ''}".strip()
                    continue
                raise ScalerError(f"{verb} {self.namespace}/{self.name}: HTTP {status} {exc.reason or ''}") from None
            except Exception as exc:  # noqa: BLE001 - urllib3 timeouts, refused connections, DNS
                last = f"{verb} {self.namespace}/{self.name}: {type(exc).__name__}: {exc}"[:300]
                continue
        raise ScalerError(f"{last} (after {self.attempts} attempts)")


class _Conflict(Exception):
    pass
