"""Stand-in Kubernetes API server for the CockroachDB operator's objects, on 127.0.0.1.

No kube-apiserver can run here, so tests drive the REAL `kubernetes` Python client against this server. It
serves only what evolution_pipeline/resources/operator.py uses, following the Kubernetes API conventions:
- CrdbClusters (crdb.cockroachlabs.com/v1beta1): GET, POST, DELETE (propagationPolicy), PATCH with
  application/json-patch+json (RFC 6902) or application/merge-patch+json (RFC 7386); strategic merge patch is
  refused with 415 as for every custom resource. A resourceVersion in the patched object is a precondition
  (409 Conflict when stale), metadata.generation grows only when the spec changes, status is ignored on the
  main resource (status subresource), the spec's required fields are validated (422 Invalid).
- CrdbNodes and Pods: LIST with an equality labelSelector. PersistentVolumeClaims (core v1): LIST, DELETE.
- Errors are Status objects (kind Status, status Failure, message, reason, details, code), 403 messages are
  worded like the RBAC authorizer's and name the real ServiceAccount (k8s/pipeline/rbac.yaml crdb-pipeline,
  namespace dagster). RBAC is enforced from Role rules: `rbac_roles` maps each namespace to the rules bound
  there (a RoleBinding grants its Role only in its own namespace: Kubernetes docs
  reference/access-authn-authz/rbac.md "Role and ClusterRole"), `rbac_rules` applies one list everywhere (a
  shortcut for tests of one namespace); a rule with resourceNames allows only those names, and never a
  list/create, which carry no name (kubernetes/kubernetes pkg/apis/rbac/v1/evaluation_helpers.go
  ResourceNameMatches). `pipeline_roles()` builds rbac_roles from k8s/pipeline/rbac.yaml plus the Dagster
  chart's own Role in Dagster's namespace (CHART_ROLE_RULES).
- Pods are deleted as the kubelet does it (kubernetes/website content/en/docs/concepts/workloads/pods/
  pod-lifecycle.md "Termination of Pods"; ObjectMeta in k8s.io/apimachinery pkg/apis/meta/v1/types.go): a
  DELETE sets metadata.deletionTimestamp (the time after which the pod is gone) and
  metadata.deletionGracePeriodSeconds (DeleteOptions.gracePeriodSeconds, else the pod's
  spec.terminationGracePeriodSeconds; a second DELETE may only shorten it; 0 removes it at once) and answers
  200 with the Terminating pod. During the grace period the pod stays, phase Running, and its Ready
  condition and its CrdbNode's PodReady are left as they were (stricter: nothing says they flip at once;
  readers must look at deletionTimestamp); CockroachDB drains meanwhile. Then the pod is gone, its CrdbNode
  reports PodReady=False, and the simulated operator makes a pod of the same name again after
  reconcile_delay, Ready after node_ready_delay. `pod_grace_seconds` is that grace period, short by default
  so tests stay fast (Kubernetes' default is 30 s; the operator's value for CockroachDB pods is not in a
  public source: the kind workflow prints it).
- Stricter than a friendly server, as a real one is:
  * a create that carries metadata.resourceVersion is refused (k8s.io/apiserver pkg/storage/etcd3/store.go
    Create returns storage.ErrResourceVersionSetOnCreate "resourceVersion should not be set on objects to be
    created"; registry/generic/registry/store.go InterpretCreateError passes it on unchanged and
    endpoints/handlers/responsewriters/status.go ErrorToAPIStatus answers a non-Status error with 500);
  * a create in a namespace that does not exist is 404 'namespaces "<ns>" not found' (the NamespaceLifecycle
    admission plugin, k8s.io/apiserver pkg/admission/plugin/namespace/lifecycle/admission.go);
  * the operator's validating webhook (it registers cockroach-webhook-config at runtime: helm-charts
    cockroachdb-parent/charts/operator/templates/operator.yaml RBAC, charts/operator/README.md) can deny a
    create/patch: 'admission webhook "<name>" denied the request: <reason>' (k8s.io/apiserver
    pkg/admission/plugin/webhook/errors/statuserror.go ToStatusErr) with the webhook's own code, at least
    400: 403 for controller-runtime's admission.Denied (pkg/webhook/admission/response.go
    ValidationResponse), 422 for a field error list; `webhook_denial_code` picks one. Or it can be down:
    500 'Internal error occurred: failed calling webhook "<name>": ...' (k8s.io/apiserver
    pkg/util/webhook/error.go ErrCallingWebhook, failurePolicy Fail). The webhook NAME here is illustrative:
    the operator creates its configurations at runtime and no public source lists the entries' names.
- A simulated operator reconciles lazily (on every request, from the clock). Modes make it as unhelpful as
  the public sources allow:
  * status_writes: "never" (default: no public source shows the operator writing status.readyNodes or
    observedGeneration, which the v1beta1 types only declare), "late" (after status_delay), "prompt";
  * one_at_a_time: the missing CrdbNodes appear one per reconcile_delay instead of all at once;
  * each CrdbNode gets a Pod of the same name labelled crdb.cockroachlabs.com/cluster=<cluster>
    (helm-charts docs/migration/operator/manual_migration.md: pods and CrdbNodes share names; the migration
    docs list pods with that label). The CrdbNode's PodReady turns True after node_ready_delay; the pod's
    Ready after node_ready_delay + pod_ready_lag (pod_ready_lag > 0: the node condition runs ahead of the
    pod); never, with `never_ready`.
  * PVCs are named <volumeClaimTemplate name>-<node> and carry the template's metadata.labels (ASSUMPTION,
    as a StatefulSet does: no public source shows what the operator copies); nothing else.
  * With `workers` (Node objects, e.g. k8s_scheduler.kind_workers()) every CockroachDB pod is bound to a worker
    as kube-scheduler would (spec.nodeName; PodTopologySpread over podTemplate.spec.topologySpreadConstraints,
    a recreated pod back on its worker, no feasible worker: Pending and never Ready), and worker_locality()
    is the --locality the operator derives from it (tests/doubles/k8s_scheduler.py, with the sources).
    Without workers pods are never bound: nothing reads where they run.
  With `operator_running = False` nothing is reconciled. Deleting a CrdbCluster removes its CrdbNodes and
  pods after `delete_delay` (and their PVCs unless pvc_retention="Retain"), then the cluster.

What it proves: the pipeline's requests, patches, selectors and error handling work through the real client
against documented API behaviour. What it does not prove: the operator's real timing, its PVC labels, its
webhook's rules, or anything about CockroachDB itself (the kind workflow, .github/workflows/kind.yml, does).
"""

from __future__ import annotations

import copy
import json
import random
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from tests.doubles import k8s_scheduler
from tests.doubles.http_reply import send_json

GROUP, VERSION = "crdb.cockroachlabs.com", "v1beta1"
CLUSTERS, NODES, PVCS, PODS = "crdbclusters", "crdbnodes", "persistentvolumeclaims", "pods"
CORE = (PVCS, PODS)
CLUSTER_LABEL = "crdb.cockroachlabs.com/cluster"
KINDS = {CLUSTERS: "CrdbCluster", NODES: "CrdbNode", PVCS: "PersistentVolumeClaim", PODS: "Pod"}
# Illustrative webhook name (see the module docstring); the configuration name is the chart's.
WEBHOOK = "vcrdbcluster.cockroach-webhook-config"
WEBHOOK_URL = "https://cockroach-webhook-service.crdb-operator.svc:443/validate-crdbcluster?timeout=10s"
SERVICE_ACCOUNT = "system:serviceaccount:dagster:crdb-pipeline"
# The Dagster chart's Role, bound to global.serviceAccountName in the release namespace when rbacEnabled
# (dagster-io/dagster helm/dagster/templates/role.yaml, rolebinding.yaml).
CHART_ROLE_RULES: list[dict] = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get", "watch", "list"]},
    {
        "apiGroups": [""],
        "resources": ["pods", "events"],
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    },
    {"apiGroups": [""], "resources": ["pods/log", "pods/status"], "verbs": ["get", "watch", "list"]},
]
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}
CUSTOM_PATH = re.compile(
    rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/([^/]+)/({CLUSTERS}|{NODES})(?:/([^/]+))?$"
)
PVC_PATH = re.compile(rf"^/api/v1/namespaces/([^/]+)/({PVCS}|{PODS})(?:/([^/]+))?$")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Request:
    """One request as the RBAC authorizer would see it."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str
    code: int
    content_type: str = ""
    authorization: str = ""


class ApiError(Exception):
    def __init__(self, code: int, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}

    def status(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": REASONS.get(self.code, "Unknown"),
            "details": self.details,
            "code": self.code,
        }


def qualified(resource: str) -> str:
    return resource if resource in CORE else f"{resource}.{GROUP}"


def not_found(resource: str, name: str) -> ApiError:
    # k8s.io/apimachinery pkg/api/errors NewNotFound: '<resource>.<group> "<name>" not found', reason NotFound.
    group = "" if resource in CORE else GROUP
    return ApiError(
        404, f'{qualified(resource)} "{name}" not found', {"name": name, "group": group, "kind": resource}
    )


def parse_selector(text: str) -> list[tuple[str, str, str]]:
    """Equality-based label selectors: k=v, k==v, k!=v, comma-separated."""
    terms = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([^!=]+)(!=|==|=)(.*)", part)
        if not m:
            raise ApiError(
                400, f"unable to parse requirement: {part!r} (the stand-in supports equality selectors)"
            )
        terms.append((m.group(1).strip(), m.group(2), m.group(3).strip()))
    return terms


def matches(labels: dict, terms: list[tuple[str, str, str]]) -> bool:
    return all((labels.get(k) == v) == (op != "!=") for k, op, v in terms)


# --- RFC 6902 / RFC 7386, the subset Kubernetes clients send ----------------------------------------------


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _parent(doc, parts: list[str], path: str):
    for part in parts[:-1]:
        if isinstance(doc, list):
            if not part.isdigit() or int(part) >= len(doc):
                raise ApiError(422, f"doc is missing path: {path!r}")
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise ApiError(422, f"doc is missing path: {path!r}")
    return doc


def json_patch(doc: dict, ops: list) -> dict:
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, f"invalid JSON patch operation {op!r}")
        parts = _pointer(op["path"])
        parent, key = _parent(doc, parts, op["path"]), parts[-1]
        kind = op["op"]
        is_list = isinstance(parent, list)
        if is_list and key != "-" and not key.isdigit():
            raise ApiError(422, f"invalid array index {key!r} in {op['path']!r}")
        index = int(key) if is_list and key.isdigit() else None
        exists = (index is not None and index < len(parent)) if is_list else key in parent
        if kind == "test":
            if not exists or (parent[index] if is_list else parent[key]) != op.get("value"):
                raise ApiError(422, f"testing value {op['path']} failed: test failed")
        elif kind == "replace":
            if not exists:
                raise ApiError(422, f"replace operation does not apply: doc is missing key: {op['path']}")
            parent[index if is_list else key] = op.get("value")
        elif kind == "add":
            if is_list:
                parent.insert(len(parent) if key == "-" else index, op.get("value"))
            else:
                parent[key] = op.get("value")
        elif kind == "remove":
            if not exists:
                raise ApiError(422, f"remove operation does not apply: doc is missing path: {op['path']}")
            del parent[index if is_list else key]
        else:
            raise ApiError(422, f"unsupported JSON patch operation {kind!r} in the stand-in")
    return doc


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def rule_allows(rule: dict, verb: str, group: str, resource: str, name: str) -> bool:
    """kubernetes/kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go RuleAllows: verb, group and resource
    match (or "*"), and resourceNames, when given, name this object (a request without a name, such as a
    list or a create, never matches a rule with resourceNames)."""
    def has(values: list, value: str) -> bool:
        return value in values or "*" in values

    names = rule.get("resourceNames") or []
    return (
        has(rule.get("apiGroups", []), group)
        and has(rule.get("resources", []), resource)
        and has(rule.get("verbs", []), verb)
        and (not names or name in names)
    )


def pipeline_roles(docs: list[dict], account: str, account_ns: str, dagster_ns: str) -> dict[str, list[dict]]:
    """namespace -> the rules bound to ServiceAccount account_ns/account by the RoleBindings in docs (Roles
    resolved in the binding's namespace), plus the Dagster chart's Role in dagster_ns."""
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d.get("kind") == "Role"}
    subject = {"kind": "ServiceAccount", "name": account, "namespace": account_ns}
    bound: dict[str, list[dict]] = {dagster_ns: copy.deepcopy(CHART_ROLE_RULES)}
    for binding in (d for d in docs if d.get("kind") == "RoleBinding"):
        ns = binding["metadata"]["namespace"]
        if subject in binding.get("subjects", []) and binding["roleRef"]["kind"] == "Role":
            role = roles.get((ns, binding["roleRef"]["name"]))
            if role is not None:  # a binding to a missing Role grants nothing
                bound.setdefault(ns, []).extend(copy.deepcopy(role["rules"]))
    return bound


def _with_nodes(spec: dict, nodes: int) -> dict:
    spec = copy.deepcopy(spec)
    spec["regions"][0]["nodes"] = nodes
    return spec


def validate_cluster(obj: dict) -> None:
    """The CRD's OpenAPI checks for the fields we write (crdbcluster_types.go markers)."""
    causes = []
    regions = (obj.get("spec") or {}).get("regions")
    if not isinstance(regions, list):
        causes.append("spec.regions: Required value")
    for i, region in enumerate(regions or []):
        if not isinstance(region, dict) or not isinstance(region.get("code"), str) or not region["code"]:
            causes.append(f"spec.regions[{i}].code: Required value")
        nodes = region.get("nodes") if isinstance(region, dict) else None
        if not isinstance(nodes, int) or isinstance(nodes, bool):
            causes.append(f"spec.regions[{i}].nodes: Invalid value: must be an integer")
        elif nodes < 0:
            causes.append(
                f"spec.regions[{i}].nodes: Invalid value: {nodes}: should be greater than or equal to 0"
            )
    if causes:
        name = (obj.get("metadata") or {}).get("name", "")
        raise ApiError(
            422,
            f'CrdbCluster.{GROUP} "{name}" is invalid: ' + ", ".join(causes),
            {"name": name, "group": GROUP, "kind": "CrdbCluster", "causes": [{"message": c} for c in causes]},
        )


# --- the server --------------------------------------------------------------------------------------------


class KubeApiDouble:
    """Start with `with KubeApiDouble() as api:`; point a kubernetes Configuration at `api.host`."""

    def __init__(
        self,
        *,
        reconcile_delay: float = 0.05,
        node_ready_delay: float = 0.05,
        delete_delay: float = 0.05,
        rbac_rules: list[dict] | None = None,
        rbac_roles: dict[str, list[dict]] | None = None,
        pod_grace_seconds: float = 0.05,
        token: str | None = None,
        pvc_retention: str = "Delete",
        user: str = SERVICE_ACCOUNT,
        status_writes: str = "never",
        status_delay: float = 0.3,
        one_at_a_time: bool = False,
        pod_ready_lag: float = 0.0,
        namespaces: tuple[str, ...] = ("default", "crdb", "crdb-rehearsal"),
        workers: list[dict] | None = None,
        scheduler_seed: int = 0,
    ):
        assert status_writes in ("never", "late", "prompt"), status_writes
        self.reconcile_delay = reconcile_delay
        self.node_ready_delay = node_ready_delay
        self.delete_delay = delete_delay
        self.rbac_rules, self.token, self.pvc_retention, self.user = rbac_rules, token, pvc_retention, user
        assert rbac_rules is None or rbac_roles is None, "one RBAC model at a time"
        self.rbac_roles, self.pod_grace_seconds = rbac_roles, pod_grace_seconds
        self.status_writes, self.status_delay = status_writes, status_delay
        self.one_at_a_time, self.pod_ready_lag = one_at_a_time, pod_ready_lag
        self.namespaces = set(namespaces)
        self.workers = copy.deepcopy(workers)
        self._rng = random.Random(scheduler_seed)
        self._placed: dict[tuple[str, str], str] = {}  # (namespace, pod) -> worker: its local volume's node
        self.webhook_denial: str | None = None  # a reason: the operator's webhook denies creates and patches
        self.webhook_denial_code = 403  # controller-runtime admission.Denied
        self.webhook_down = False  # the webhook cannot be called: every create/patch of a CrdbCluster fails
        self.never_ready = False
        self.operator_running = True  # False: nothing is reconciled (a stopped or wedged operator)
        self.requests: list[Request] = []
        self._objects: dict[tuple[str, str, str], dict] = {}  # (resource, namespace, name) -> object
        self._timers: dict[tuple[str, str, str], float] = {}  # when something last happened to an object
        self._failures: list[list] = []  # [verb, resource, code, times left, message]
        self._interfere = 0
        self._rv = 100
        self._node_ids = 0
        self._seen_generation: dict[tuple[str, str], int] = {}  # what the simulated operator acted on
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # lifecycle
    def __enter__(self) -> Self:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="k8s-api-double", daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # test controls
    def fail_next(
        self, verb: str, resource: str, code: int, times: int = 1, message: str | None = None
    ) -> None:
        """The next `times` requests with this verb on this resource get a Status with `code`."""
        with self._lock:
            self._failures.append([verb, resource, code, times, message])

    def interfere_with_next_patches(self, count: int) -> None:
        """Another writer changes the CrdbCluster just before each of the next `count` PATCHes arrives."""
        with self._lock:
            self._interfere = count

    def seen(self) -> set[tuple[str, str, str]]:
        """(apiGroup, resource, verb) of every request, as RBAC would name it."""
        with self._lock:
            return {(r.group, r.resource, r.verb) for r in self.requests}

    def count(self, verb: str, resource: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.verb == verb and r.resource == resource)

    def add_cluster(
        self,
        namespace: str,
        name: str,
        nodes: int = 1,
        *,
        code: str = "local",
        annotations: dict | None = None,
        settled: bool = True,
        pvc_labels: dict | None = None,
        spec: dict | None = None,
    ) -> dict:
        """A CrdbCluster as `kubectl apply` left it; settled: the operator already made its nodes ready.
        pvc_labels: what its volumeClaimTemplate.metadata.labels say (k8s/crdb-cluster.yaml sets some).
        spec: a manifest's whole spec instead (e.g. k8s/crdb-cluster.yaml's), its regions[0].nodes set to `nodes`."""
        claim = {
            "metadata": {"name": "datadir", "labels": dict(pvc_labels or {})},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        }
        with self._lock:
            self.namespaces.add(namespace)
            obj = self._create_cluster(
                namespace,
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "CrdbCluster",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "annotations": dict(annotations or {}),
                    },
                    "spec": _with_nodes(spec, nodes) if spec is not None else {
                        "regions": [{"code": code, "nodes": nodes, "namespace": namespace}],
                        "template": {
                            "spec": {
                                "image": "cockroachdb/cockroach:v26.2.1",
                                "dataStore": {"volumeClaimTemplate": claim},
                            }
                        },
                    },
                },
            )
            if settled:
                for _ in range(nodes):
                    self._timers[(CLUSTERS, namespace, name)] = float("-inf")
                    self._advance()
                for node in self._nodes_of(namespace, name):
                    self._timers[(NODES, namespace, node["metadata"]["name"])] = float("-inf")
                self._advance()
            return copy.deepcopy(obj)

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        with self._lock:
            self._advance()
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def names(self, resource: str, namespace: str) -> list[str]:
        with self._lock:
            self._advance()
            return sorted(n for (r, ns, n) in self._objects if r == resource and ns == namespace)

    # object bookkeeping
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(self, resource: str, obj: dict) -> dict:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        self._objects[(resource, meta["namespace"], meta["name"])] = obj
        return obj

    def _create_cluster(self, namespace: str, body: dict) -> dict:
        obj = copy.deepcopy(body)
        obj.pop("status", None)  # status subresource: create ignores it
        meta = obj["metadata"]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), generation=1, creationTimestamp=now_rfc3339())
        self._timers[(CLUSTERS, namespace, meta["name"])] = time.monotonic()
        return self._store(CLUSTERS, obj)

    def _nodes_of(self, namespace: str, cluster: str) -> list[dict]:
        return [
            o
            for (r, ns, _), o in self._objects.items()
            if r == NODES and ns == namespace and o["metadata"]["labels"].get(CLUSTER_LABEL) == cluster
        ]

    def _add_node(self, namespace: str, cluster: dict) -> None:
        cname = cluster["metadata"]["name"]
        name = f"{cname}-{secrets.token_hex(3)}"
        stamp = now_rfc3339()
        template = copy.deepcopy((cluster["spec"].get("template") or {}).get("spec") or {})
        owner = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CrdbCluster",
            "name": cname,
            "uid": cluster["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        self._store(
            NODES,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "CrdbNode",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "generation": 1,
                    # helm-charts pkg/migrate/testdata/*/crdbnode-0.yaml.golden: this label and finalizer.
                    "labels": {CLUSTER_LABEL: cname},
                    "finalizers": ["crdbnode.crdb.cockroachlabs.com/finalizer"],
                    # ASSUMPTION: the operator owns its CrdbNodes (garbage collection of a deleted cluster).
                    "ownerReferences": [owner],
                },
                "spec": template,
                "status": {
                    "conditions": [
                        {"type": "PodRunning", "status": "False", "lastTransitionTime": stamp},
                        {"type": "PodReady", "status": "False", "lastTransitionTime": stamp},
                    ],
                },
            },
        )
        self._timers[(NODES, namespace, name)] = time.monotonic()
        self._store_pod(namespace, cluster, name)
        self._store_claim(namespace, template, name)

    def _store_pod(self, namespace: str, cluster: dict, name: str) -> None:
        template = (cluster["spec"].get("template") or {}).get("spec") or {}
        stamp = now_rfc3339()
        pod_labels = {**((template.get("podTemplate") or {}).get("metadata") or {}).get("labels", {})}
        cname = cluster["metadata"]["name"]
        self._store(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,  # the CrdbNode's name (manual_migration.md)
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": {**pod_labels, CLUSTER_LABEL: cname},
                },
                "spec": {
                    "containers": [{"name": "cockroachdb", "image": template.get("image", "")}],
                    "terminationGracePeriodSeconds": self.pod_grace_seconds,
                    # PodTemplate is merged into the operator's pod (crdbnode_types.go PodTemplate).
                    "topologySpreadConstraints": copy.deepcopy(
                        ((template.get("podTemplate") or {}).get("spec") or {}).get("topologySpreadConstraints")
                        or []),
                },
                "status": {
                    "phase": "Pending",
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": stamp}],
                },
            },
        )
        self._bind(namespace, name)

    def _bind(self, namespace: str, name: str) -> None:
        """kube-scheduler's binding of a Pending pod to a worker (only when workers are modelled)."""
        pod = self._objects.get((PODS, namespace, name))
        if self.workers is None or pod is None or pod["spec"].get("nodeName"):
            return
        pods = [o for (r, _, _), o in self._objects.items() if r == PODS]
        worker = self._placed.get((namespace, name)) or k8s_scheduler.schedule(pod, pods, self.workers, self._rng)
        if worker is None:
            if all(c["type"] != "PodScheduled" for c in pod["status"]["conditions"]):
                pod["status"]["conditions"].append({"type": "PodScheduled", "status": "False",
                                                    "reason": "Unschedulable", "lastTransitionTime": now_rfc3339()})
            return
        pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "PodScheduled"]
        self._placed[(namespace, name)] = worker
        pod["spec"]["nodeName"] = worker
        pod["metadata"]["resourceVersion"] = self._next_rv()

    def worker_locality(self, namespace: str, pod: str) -> str | None:
        """The --locality the operator starts this pod's CockroachDB with (None: not bound to a worker)."""
        with self._lock:
            obj = self._objects.get((PODS, namespace, pod))
            worker = ((obj or {}).get("spec") or {}).get("nodeName")
            labels = next((w["metadata"]["labels"] for w in self.workers or [] if w["metadata"]["name"] == worker),
                          None)
            if labels is None:
                return None
            cluster = self._objects.get((CLUSTERS, namespace, (obj["metadata"]["labels"] or {}).get(CLUSTER_LABEL)))
            mappings = (((cluster or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get(
                "localityMappings")
            return k8s_scheduler.locality(labels, mappings)

    def _store_claim(self, namespace: str, template: dict, name: str) -> None:
        claim = (template.get("dataStore") or {}).get("volumeClaimTemplate")
        if claim is None:
            return
        claim_meta = claim.get("metadata") or {}
        self._store(
            PVCS,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": f"{claim_meta.get('name', 'datadir')}-{name}",
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": dict(claim_meta.get("labels") or {}),
                },
                "spec": copy.deepcopy(claim.get("spec") or {}),
                "status": {"phase": "Bound"},
            },
        )

    def _advance(self) -> None:
        """What the kubelet, the operator and the garbage collector would have done by now."""
        now = time.monotonic()
        self._finish_terminations(now)
        for key, cluster in list(self._objects.items()):
            if key[0] != CLUSTERS:
                continue
            ns, name = key[1], key[2]
            if cluster["metadata"].get("deletionTimestamp"):
                if now - self._timers[key] >= self.delete_delay:
                    for node in self._nodes_of(ns, name):
                        self._delete_node(ns, node)
                    del self._objects[key]
                continue
            if self.operator_running:
                self._reconcile(key, cluster, now)

    def _reconcile(self, key: tuple[str, str, str], cluster: dict, now: float) -> None:
        ns, name = key[1], key[2]
        meta = cluster["metadata"]
        missing = cluster["spec"]["regions"][0]["nodes"] - len(self._nodes_of(ns, name))
        if missing > 0 and now - self._timers[key] >= self.reconcile_delay:
            for _ in range(1 if self.one_at_a_time else missing):
                self._add_node(ns, cluster)
            self._timers[key] = now  # one_at_a_time: the next node one reconcile_delay later
            if not self.one_at_a_time or missing == 1:
                self._seen_generation[(ns, name)] = meta["generation"]
        elif missing <= 0:
            self._seen_generation[(ns, name)] = meta["generation"]
        for node in self._nodes_of(ns, name):  # a deleted pod is made again after reconcile_delay
            node_key = (NODES, ns, node["metadata"]["name"])
            gone = (PODS, ns, node_key[2]) not in self._objects
            if gone and now - self._timers[node_key] >= self.reconcile_delay:
                self._store_pod(ns, cluster, node_key[2])
                self._timers[node_key] = now
        ready = sum(self._ready_node(ns, node, now) for node in self._nodes_of(ns, name))
        self._write_status(key, cluster, ready, now)

    def _ready_node(self, ns: str, node: dict, now: float) -> bool:
        """Turn the CrdbNode's PodReady and its pod's Ready on when their time has come."""
        name = node["metadata"]["name"]
        since = now - self._timers[(NODES, ns, name)]
        conds = {c["type"]: c for c in node["status"]["conditions"]}
        self._bind(ns, name)  # a Pending pod is retried as the cluster changes
        pod = self._objects.get((PODS, ns, name))
        if self.workers is not None and not (pod or {}).get("spec", {}).get("nodeName"):
            return conds["PodReady"]["status"] == "True"  # unbound: no container runs, nothing turns Ready
        if not self.never_ready and conds["PodReady"]["status"] != "True" and since >= self.node_ready_delay:
            for c in conds.values():
                c.update(status="True", lastTransitionTime=now_rfc3339())
            if node["status"].get("nodeID") is None:  # a recreated pod keeps its store's node ID
                self._node_ids += 1
                node["status"]["nodeID"] = self._node_ids
            node["metadata"]["resourceVersion"] = self._next_rv()
        lag = self.node_ready_delay + self.pod_ready_lag
        if pod and not self.never_ready and pod["status"]["phase"] != "Running" and since >= lag:
            pod["status"]["phase"] = "Running"
            pod["status"]["conditions"][0].update(status="True", lastTransitionTime=now_rfc3339())
            pod["metadata"]["resourceVersion"] = self._next_rv()
        return conds["PodReady"]["status"] == "True"

    def _write_status(self, key: tuple[str, str, str], cluster: dict, ready: int, now: float) -> None:
        """status.readyNodes/observedGeneration only in the modes that write them at all."""
        if self.status_writes == "never":
            return
        if self.status_writes == "late" and now - self._timers[key] < self.status_delay:
            return
        status = cluster.setdefault("status", {})
        wanted = {"readyNodes": ready}
        seen = self._seen_generation.get((key[1], key[2]))
        if seen is not None:
            wanted["observedGeneration"] = seen
        if any(status.get(k) != v for k, v in wanted.items()):
            status.update(wanted)
            cluster["metadata"]["resourceVersion"] = self._next_rv()  # a status write bumps it too

    def _delete_node(self, ns: str, node: dict) -> None:
        name = node["metadata"]["name"]
        del self._objects[(NODES, ns, name)]
        self._objects.pop((PODS, ns, name), None)
        if self.pvc_retention == "Delete":
            for key, obj in list(self._objects.items()):
                if key[0] == PVCS and key[1] == ns and key[2].endswith(f"-{name}"):
                    del self._objects[key]

    # request handling
    def authorize(self, verb: str, group: str, resource: str, ns: str, name: str) -> None:
        if self.rbac_rules is None and self.rbac_roles is None:
            return
        rules = self.rbac_rules if self.rbac_rules is not None else self.rbac_roles.get(ns, [])
        if any(rule_allows(rule, verb, group, resource, name) for rule in rules):
            return
        # k8s.io/apiserver pkg/endpoints/handlers/responsewriters/errors.go forbiddenMessage + NewForbidden.
        subject = f'{qualified(resource)} "{name}"' if name else qualified(resource)
        raise ApiError(
            403,
            f'{subject} is forbidden: User "{self.user}" cannot {verb} resource "{resource}" in API '
            f'group "{group}" in the namespace "{ns}"',
            {"name": name, "group": group, "kind": resource},
        )

    def inject(self, verb: str, resource: str, name: str) -> None:
        for failure in self._failures:
            f_verb, f_resource, code, times, message = failure
            if f_verb == verb and f_resource == resource and times > 0:
                failure[3] -= 1
                default = {
                    409: f'Operation cannot be fulfilled on {qualified(resource)} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    404: f'{qualified(resource)} "{name}" not found',
                }
                raise ApiError(
                    code,
                    message or default.get(code, f"injected failure {code}"),
                    {"name": name, "group": "" if resource in CORE else GROUP, "kind": resource},
                )

    def handle(self, method: str, path: str, query: dict, content_type: str, body: bytes) -> tuple[int, dict]:
        m = CUSTOM_PATH.match(path) or PVC_PATH.match(path)
        if not m:
            raise ApiError(404, "the server could not find the requested resource")
        ns, resource, name = m.group(1), m.group(2), m.group(3) or ""
        if resource in CORE and method in ("POST", "PATCH"):
            raise ApiError(405, f"the stand-in does not serve {method} on {resource}")
        if (resource == NODES and method != "GET") or (resource == PODS and method not in ("GET", "DELETE")):
            raise ApiError(405, f"the stand-in does not serve {method} on {resource}")
        if method == "GET" and not name:
            return self._list(ns, resource, query)
        if method == "GET":
            obj = self._objects.get((resource, ns, name))
            if not obj:
                raise not_found(resource, name)
            return 200, obj
        if method == "PATCH" and name:
            return self._patch(ns, name, content_type, body)
        if method == "POST" and not name:
            return self._post(ns, body)
        if method == "DELETE" and name:
            return self._delete(ns, resource, name, query, body)
        raise ApiError(405, f"{method} {path} is not served by the stand-in")

    def _terminate_pod(self, ns: str, pod: dict, query: dict, options: dict) -> dict:
        """Graceful deletion (see the module docstring): Terminating until the grace period is over."""
        asked = query.get("gracePeriodSeconds", [options.get("gracePeriodSeconds")])[0]
        default = pod["spec"].get("terminationGracePeriodSeconds", 30)  # Kubernetes' default grace period
        grace = float(asked if asked is not None else default)
        meta, key = pod["metadata"], (PODS, ns, pod["metadata"]["name"])
        if meta.get("deletionTimestamp"):  # already terminating: the grace period may only be shortened
            remaining = self._timers[key] - time.monotonic()
            if grace >= remaining:
                return pod
        if grace <= 0:
            self._pod_gone(ns, pod["metadata"]["name"])
            return pod
        deadline = time.monotonic() + grace
        self._timers[key] = deadline
        stamp = datetime.fromtimestamp(time.time() + grace, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta.update(deletionTimestamp=stamp, deletionGracePeriodSeconds=grace)
        return self._store(PODS, pod)

    def _finish_terminations(self, now: float) -> None:
        for (resource, ns, name), pod in list(self._objects.items()):
            terminating = resource == PODS and pod["metadata"].get("deletionTimestamp")
            if terminating and now >= self._timers[(PODS, ns, name)]:
                self._pod_gone(ns, name)

    def _pod_gone(self, ns: str, name: str) -> None:
        """The kubelet is done: the pod object goes, its CrdbNode reports PodReady=False, and the operator
        makes the pod again after reconcile_delay (helm-charts cockroachdb-parent/README.md "Kill a
        CockroachDB Node"); its store, and so its node ID, is kept."""
        self._objects.pop((PODS, ns, name), None)
        self._timers.pop((PODS, ns, name), None)
        node = self._objects.get((NODES, ns, name))
        if node is not None:
            for cond in node["status"]["conditions"]:
                cond.update(status="False", lastTransitionTime=now_rfc3339())
            node["metadata"]["resourceVersion"] = self._next_rv()
            self._timers[(NODES, ns, name)] = time.monotonic()

    def add_pod(self, namespace: str, name: str, labels: dict | None = None) -> None:
        """A pod that is not CockroachDB's (e.g. a Dagster run pod), Running and Ready."""
        with self._lock:
            self.namespaces.add(namespace)
            self._store(
                PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                                 "labels": dict(labels or {})},
                    "spec": {"containers": [{"name": "main", "image": "example"}],
                             "terminationGracePeriodSeconds": self.pod_grace_seconds},
                    "status": {"phase": "Running",
                               "conditions": [{"type": "Ready", "status": "True",
                                               "lastTransitionTime": now_rfc3339()}]},
                },
            )

    def _list(self, ns: str, resource: str, query: dict) -> tuple[int, dict]:
        if query.get("watch", [""])[0] in ("true", "1"):
            raise ApiError(400, "the stand-in does not serve watches")
        terms = parse_selector(query.get("labelSelector", [""])[0])
        items = [
            o
            for (r, n, _), o in sorted(self._objects.items())
            if r == resource and n == ns and matches(o["metadata"].get("labels") or {}, terms)
        ]
        kind = KINDS[resource] + "List"
        api_version = "v1" if resource in CORE else f"{GROUP}/{VERSION}"
        return 200, {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def admit(self, operation: str, name: str) -> None:
        """The operator's validating webhook, called for CREATE and UPDATE (a patch is an UPDATE)."""
        if self.webhook_down:
            raise ApiError(
                500,
                f'Internal error occurred: failed calling webhook "{WEBHOOK}": failed to call webhook: Post '
                f'"{WEBHOOK_URL}": dial tcp 10.96.0.42:443: connect: connection refused',
            )
        if self.webhook_denial is not None:
            raise ApiError(
                self.webhook_denial_code,
                f'admission webhook "{WEBHOOK}" denied the request: {self.webhook_denial}',
                {"name": name, "group": GROUP, "kind": CLUSTERS},
            )

    def _patch(self, ns: str, name: str, content_type: str, body: bytes) -> tuple[int, dict]:
        current = self._objects.get((CLUSTERS, ns, name))
        if current is None:
            raise not_found(CLUSTERS, name)
        if self._interfere > 0:
            self._interfere -= 1
            annotations = current["metadata"].setdefault("annotations", {})
            annotations["example.com/other-writer"] = str(
                int(annotations.get("example.com/other-writer", "0")) + 1
            )
            current["metadata"]["resourceVersion"] = self._next_rv()
        if content_type not in PATCH_TYPES:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(PATCH_TYPES)}, application/apply-patch+yaml",
            )
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"error decoding patch: {exc}") from exc
        if content_type == PATCH_TYPES[0]:
            if not isinstance(patch, list):
                raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            patched = json_patch(current, patch)
        else:
            if not isinstance(patch, dict):
                raise ApiError(400, "error decoding merge patch: the patch must be a JSON object")
            patched = merge_patch(current, patch)
        meta, old_meta = patched.setdefault("metadata", {}), current["metadata"]
        if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {qualified(CLUSTERS)} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": GROUP, "kind": CLUSTERS},
            )
        for key in ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp"):
            if key in old_meta:
                meta[key] = old_meta[key]
        patched["status"] = copy.deepcopy(current.get("status") or {})  # status subresource
        validate_cluster(patched)
        self.admit("UPDATE", name)  # admission runs after schema validation, before storage
        if patched == current:
            return 200, current  # a no-op patch changes nothing, not even resourceVersion
        if patched.get("spec") != current.get("spec"):
            meta["generation"] = old_meta["generation"] + 1
            self._timers[(CLUSTERS, ns, name)] = time.monotonic()
        return 200, self._store(CLUSTERS, patched)

    def _post(self, ns: str, body: bytes) -> tuple[int, dict]:
        try:
            obj = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"error decoding body: {exc}") from exc
        if (
            not isinstance(obj, dict)
            or obj.get("kind") != "CrdbCluster"
            or obj.get("apiVersion") != f"{GROUP}/{VERSION}"
        ):
            raise ApiError(400, f"the body must be a {GROUP}/{VERSION} CrdbCluster")
        meta = obj.get("metadata") or {}
        if ns not in self.namespaces:
            raise ApiError(404, f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            raise ApiError(422, "metadata.name: Required value: name or generateName is required")
        if meta.get("namespace") not in (None, ns):
            raise ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        if (CLUSTERS, ns, meta["name"]) in self._objects:
            raise ApiError(
                409,
                f'{qualified(CLUSTERS)} "{meta["name"]}" already exists',
                {"name": meta["name"], "group": GROUP, "kind": CLUSTERS},
            )
        validate_cluster(obj)
        self.admit("CREATE", meta["name"])
        obj["metadata"] = {k: v for k, v in meta.items() if k not in ("uid", "generation")}
        return 201, self._create_cluster(ns, obj)

    def _delete(self, ns: str, resource: str, name: str, query: dict, body: bytes) -> tuple[int, dict]:
        obj = self._objects.get((resource, ns, name))
        if obj is None:
            raise not_found(resource, name)
        if resource == PVCS:
            del self._objects[(resource, ns, name)]
            return 200, obj
        if resource == PODS:
            options = json.loads(body) if body else {}
            return 200, self._terminate_pod(ns, obj, query, options)
        options = json.loads(body) if body else {}
        policy = query.get("propagationPolicy", [options.get("propagationPolicy") or "Background"])[0]
        if policy == "Foreground":
            # The garbage collector deletes the dependents (CrdbNodes) first, then the owner.
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"].update(deletionTimestamp=now_rfc3339(), finalizers=["foregroundDeletion"])
                self._timers[(CLUSTERS, ns, name)] = time.monotonic()
                self._store(CLUSTERS, obj)
            return 200, obj
        del self._objects[(CLUSTERS, ns, name)]
        # Background: the owner goes now; the dependents follow (here at once, with their PVCs per policy).
        for node in self._nodes_of(ns, name):
            self._delete_node(ns, node)
        return 200, obj


class _Handler(BaseHTTPRequestHandler):
    api: KubeApiDouble
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API server; every answer has a Content-Length

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms per request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:  # quiet test output
        pass

    def _serve(self) -> None:
        api, url = self.api, urlsplit(self.path)
        query = parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        auth = self.headers.get("Authorization") or ""
        m = CUSTOM_PATH.match(url.path) or PVC_PATH.match(url.path)
        ns, resource, name = (m.group(1), m.group(2), m.group(3) or "") if m else ("", "", "")
        verb = {
            "GET": "get" if name else "list",
            "PATCH": "patch",
            "POST": "create",
            "PUT": "update",
            "DELETE": "delete",
        }.get(self.command, self.command.lower())
        if verb == "list" and query.get("watch", [""])[0] in ("true", "1"):
            verb = "watch"
        group = "" if resource in CORE else GROUP
        with api._lock:
            try:
                if api.token is not None and auth != f"Bearer {api.token}":
                    raise ApiError(401, "Unauthorized")
                api._advance()
                if m:
                    api.authorize(verb, group, resource, ns, name)
                    api.inject(verb, resource, name)
                code, payload = api.handle(self.command, url.path, query, content_type, body)
                payload = copy.deepcopy(payload)
            except ApiError as err:
                code, payload = err.code, err.status()
            api.requests.append(Request(verb, group, resource, ns, name, code, content_type, auth))
        send_json(self, code, payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve
