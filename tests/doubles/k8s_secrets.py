"""The stand-in Kubernetes API server (k8s_api.py) plus the one core object credential rotation touches: Secrets.

Served: GET and PATCH of a named Secret (/api/v1/namespaces/<ns>/secrets/<name>), PATCH as
application/json-patch+json (RFC 6902, what KubernetesSecretStore sends, with a `test` precondition) or
application/merge-patch+json. Following the API server:
- Secret `data` values are base64 (core/v1 Secret: map[string][]byte, JSON-encoded as base64); a patch that
  leaves a value that is not base64 is refused. ASSUMPTION on the code: 422 here (stricter than guessing 200).
- A failed JSON-patch `test` op is 422 "testing value ... failed" (k8s_api.json_patch, evanphx/json-patch).
- resourceVersion grows on every change; a no-op patch changes nothing.
- RBAC with resourceNames: a rule naming resourceNames allows a request only for one of those names
  (kubernetes/kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go RuleAllows ->
  pkg/apis/rbac/v1/evaluation_helpers.go ResourceNameMatches), and a
  Role only in its own namespace. Denials are worded like k8s_api.authorize (the RBAC authorizer's).
Not served: LIST/WATCH/CREATE/DELETE of Secrets (the pipeline never needs them; 405 here).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re

from .k8s_api import PATCH_TYPES, ApiError, KubeApiDouble, json_patch, merge_patch

SECRETS = "secrets"
SECRET_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$")


class KubeApiWithSecrets(KubeApiDouble):
    def __init__(self, *, secret_rules: dict[str, list[dict]] | None = None, **kwargs):
        """secret_rules: namespace -> that namespace's Role rules for secrets (None: no RBAC enforced)."""
        super().__init__(**kwargs)
        self.secret_rules = secret_rules
        self.secret_requests: list[tuple[str, str, str, int]] = []  # (verb, namespace, name, code)

    def add_secret(self, namespace: str, name: str, string_data: dict[str, str]) -> None:
        with self._lock:
            self._objects[(SECRETS, namespace, name)] = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": self._next_rv(),
                             "uid": f"uid-{name}"},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()},
            }

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        with self._lock:
            return base64.b64decode(self._objects[(SECRETS, namespace, name)]["data"][key]).decode()

    def handle(self, method: str, path: str, query: dict, content_type: str, body: bytes) -> tuple[int, dict]:
        m = SECRET_PATH.match(path)
        if not m:
            return super().handle(method, path, query, content_type, body)
        ns, name = m.groups()
        verb = {"GET": "get", "PATCH": "patch"}.get(method, method.lower())
        try:
            code, obj = self._secret(verb, ns, name, content_type, body)
        except ApiError as err:
            self.secret_requests.append((verb, ns, name, err.code))
            raise
        self.secret_requests.append((verb, ns, name, code))
        return code, obj

    def _secret(self, verb: str, ns: str, name: str, content_type: str, body: bytes) -> tuple[int, dict]:
        self._authorize_named(verb, ns, name)
        if verb not in ("get", "patch"):
            raise ApiError(405, f"the stand-in does not serve {verb} on secrets")
        current = self._objects.get((SECRETS, ns, name))
        if current is None:
            raise ApiError(404, f'secrets "{name}" not found', {"name": name, "kind": SECRETS})
        if verb == "get":
            return 200, current
        if content_type not in PATCH_TYPES:
            raise ApiError(415, "the body of the request was in an unknown format")
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"error decoding patch: {exc}") from exc
        if content_type == PATCH_TYPES[0]:
            if not isinstance(patch, list):
                raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            patched = json_patch(current, patch)
        else:
            patched = merge_patch(current, patch)
        for key, value in (patched.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError) as exc:
                raise ApiError(422, f"Secret \"{name}\" is invalid: data[{key}]: illegal base64 data") from exc
        patched["metadata"] = copy.deepcopy(current["metadata"])
        if patched == current:
            return 200, current
        return 200, self._store(SECRETS, patched)

    def _authorize_named(self, verb: str, ns: str, name: str) -> None:
        if self.secret_rules is None:
            return
        for rule in self.secret_rules.get(ns, []):
            names = rule.get("resourceNames")
            if ("" in rule.get("apiGroups", []) and SECRETS in rule.get("resources", [])
                    and verb in rule.get("verbs", []) and (not names or name in names)):
                return
        raise ApiError(
            403,
            f'secrets "{name}" is forbidden: User "{self.user}" cannot {verb} resource "secrets" in '
            f'API group "" in the namespace "{ns}"',
            {"name": name, "group": "", "kind": SECRETS},
        )
