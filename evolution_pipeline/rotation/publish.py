"""Where the app's database URLs live, so a rotation can read the one in use and publish the next one.

Kubernetes: keys of the app's Secret (sample-app-credentials in crdb-demo), mounted into the app's pods as
files it follows (APP_DB_*_URL_FILE, sample_app/credentials.py). One GET and one PATCH of that one Secret is
all the pipeline may do there (k8s/pipeline/rbac.yaml grants exactly that, by resourceNames). Local: a
directory of URL files the local app is started with, replaced atomically (write + rename), as the kubelet
does for a Secret volume.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from ..resources import kube
from ..resources.cluster import ClusterControlError
from ..resources.operator import ApiCall, api_error, build_api_client, unreachable_error
from ..roles import AppPath

SECRETS = "secrets"
# Exactly what KubernetesSecretStore calls; tests/manifests compares k8s/pipeline/rbac.yaml with it.
REQUIRED_SECRET_VERBS = ("get", "patch")


class CredentialStoreError(RuntimeError):
    pass


class KubernetesSecretStore(dg.ConfigurableResource):
    """The app's Secret: one key per path, `<key_prefix>APP_DB_<PATH>_URL` (the rehearsal app's keys carry
    the prefix REHEARSAL_)."""

    namespace: str = Field(default="crdb-demo", description="Namespace of the app and its Secret.")
    secret_name: str = Field(default="sample-app-credentials", description="The app's Secret.")
    key_prefix: str = Field(default="", description="REHEARSAL_ for the rehearsal app's keys.")
    kubeconfig: str | None = Field(default=None, description="unset: in-cluster config, else the default.")
    context: str | None = None
    request_timeout_seconds: float = 30.0

    def describe(self) -> str:
        return f"Secret {self.namespace}/{self.secret_name}"

    def key(self, path: AppPath) -> str:
        return self.key_prefix + path.url_variable

    def read(self, path: AppPath) -> str:
        return base64.b64decode(self._raw(path)).decode()

    def _raw(self, path: AppPath) -> str:
        secret = self._call("get", lambda api: api.read_namespaced_secret(
            self.secret_name, self.namespace, _request_timeout=self.request_timeout_seconds))
        data = secret.data or {}
        if self.key(path) not in data:
            raise CredentialStoreError(
                f"{self.describe()} has no key {self.key(path)}: create it with the {path.name} path's URL "
                "(k8s/app/secret.yaml shows the shape), then re-execute")
        return data[self.key(path)]

    def publish(self, path: AppPath, url: str, expected_current: str) -> None:
        """Replace the path's key only if it still holds `expected_current` (JSON patch `test`): a concurrent
        change is refused (422) instead of overwritten. One key: the other path's and the salt stay.

        A list body: the kubernetes client sends a list as application/json-patch+json, and a dict as that
        same type too (api_client.select_header_content_type picks the first patch type), which the API
        server cannot decode as a patch; so never a dict here."""
        pointer = "/data/" + self.key(path).replace("~", "~0").replace("/", "~1")  # RFC 6901
        body = [{"op": "test", "path": pointer, "value": base64.b64encode(expected_current.encode()).decode()},
                {"op": "replace", "path": pointer, "value": base64.b64encode(url.encode()).decode()}]
        self._call("patch", lambda api: api.patch_namespaced_secret(
            self.secret_name, self.namespace, body, _request_timeout=self.request_timeout_seconds))

    def _call(self, verb: str, fn):
        call = ApiCall(verb, "", SECRETS, self.namespace, self.secret_name)
        api_client = build_api_client(self.kubeconfig, self.context)
        try:
            return fn(kube.client().CoreV1Api(api_client))
        except kube.api_exception() as exc:
            raise _store_error(api_error(call, exc)) from exc
        except Exception as exc:  # urllib3 connection errors, timeouts
            raise _store_error(unreachable_error(call, api_client.configuration.host, exc)) from exc
        finally:
            api_client.close()


def _store_error(exc: ClusterControlError) -> CredentialStoreError:
    # The operator module's messages name the call and the RBAC rule; the rule lives in k8s/pipeline/rbac.yaml.
    return CredentialStoreError(str(exc))


class FileCredentialStore(dg.ConfigurableResource):
    """A directory of URL files, `<directory>/<path>-url` (the local app runs with APP_DB_*_URL_FILE there)."""

    directory: str = Field(default=".data/local/credentials", description="Where the URL files live.")

    def describe(self) -> str:
        return f"URL files in {self.directory}"

    def file(self, path: AppPath) -> Path:
        return Path(self.directory) / f"{path.name}-url"

    def read(self, path: AppPath) -> str:
        try:
            return self.file(path).read_text().strip()
        except OSError as exc:
            raise CredentialStoreError(
                f"cannot read {self.file(path)} ({exc}): start the app with "
                f"{path.url_variable}_FILE={self.file(path)} holding its URL, then re-execute") from exc

    def publish(self, path: AppPath, url: str, expected_current: str) -> None:
        target = self.file(path)
        if self.read(path) != expected_current:  # the same precondition as the Secret's JSON patch
            raise CredentialStoreError(f"{target} changed while rotating: re-execute to start from what it holds")
        # Same directory, then rename: the app reads the old URL or the new one, never half a file.
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(url + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
