"""Cluster control through the new CockroachDB operator: one `crdb.cockroachlabs.com/v1beta1` CrdbCluster.

Field names come from the operator's API types (cockroachdb/helm-charts,
pkg/upstream/cockroach-operator/api/v1beta1/):
- crdbcluster_types.go: `spec.regions[]` holds CrdbClusterRegion{code (required, minLength 1), nodes (int32,
  required, minimum 0), namespace (optional: used for --join; defaults to the code, then the CR's namespace)}.
  CrdbClusterStatus{observedGeneration int64 ("the ObjectMeta.Generation last reconciled"), readyNodes int32
  with `omitempty` (absent means 0), reconciled bool, conditions without a type field}. The CRD has the status
  subresource, so a write to the main resource never changes status.
- crdbnode_types.go: CrdbNodeStatus{observedGeneration, conditions []NodeCondition{type, status,
  lastTransitionTime} (no reason or message), nodeID, decommission}. Condition types: PodReady (the pod's
  Ready condition as the node controller sees it; implies PodRunning), PodRunning, PodNeedsUpdate.
  persistentVolumeClaimRetentionPolicy.whenDeleted defaults to Delete.
- CrdbNodes and their pods carry the label `crdb.cockroachlabs.com/cluster=<cluster name>` (helm-charts
  docs/migration/operator/controller_migration.md lists a cluster's nodes and pods with
  `kubectl get crdbnode|pods -l crdb.cockroachlabs.com/cluster=<name>`), and a node's pod has the CrdbNode's
  name (docs/migration/operator/manual_migration.md: one CrdbNode per pod "so the crdb pods and their
  associated pvcs use the same names"; pkg/migrate/testdata/*/crdbnode-0.yaml.golden is cockroachdb-0).

Scaling is one JSON patch on `/spec/regions/0/nodes` (a merge patch would replace the whole regions list).
The patch also sets `/metadata/resourceVersion` to the version just read: the API server treats a
resourceVersion in a patch as a precondition (kubernetes/kubernetes#63104) and answers 409 Conflict if the
object changed since, so a concurrent writer can never be overwritten blindly; we re-read and retry.

Readiness is judged from what can be observed, like the operator's own health check (controller_migration.md
"Auto-pause behavior": CrdbNode PodReady=True, pod Running with Ready=True) and upstream's e2e tests
(tests/testutil/require.go RequireCRDBClusterToBeReadyEventuallyTimeout: count the pods, each Ready): the
cluster's CrdbNodes number the target, each has PodReady=True, and its pod is Ready. status.readyNodes and
status.observedGeneration are declared by the v1beta1 types, but no public source shows the operator writing
them: they are logged as hints, never required.

The rehearsal reset (reset_rehearsal_environment) is the only destructive step in the product. It runs only
when the resource's environment is `rehearsal`, its namespace is not the live cluster's namespace (PVCs and
Secrets are namespace-scoped, so sharing one is a typo away from the live data), and an existing CrdbCluster
carries the annotation REHEARSAL_ANNOTATION=rehearsal (the reset writes it when it recreates the cluster; a
hand-made rehearsal cluster needs `kubectl annotate` once). It reads k8s/crdb-cluster.yaml first, deletes the
rehearsal CrdbCluster (propagationPolicy Foreground: its CrdbNodes go first), waits until the cluster and its
nodes are gone, deletes the PVCs left behind (k8s/crdb-cluster.yaml sets whenDeleted: Retain) in the rehearsal
namespace only, and creates the cluster again from the manifest with the rehearsal name and namespace and
phase 0's node count. REHEARSAL_RBAC_RULES are granted only in the rehearsal namespace, so the live namespace
cannot be reset even by a misconfigured run.
PVCs are found by labels WE set: k8s/crdb-cluster.yaml puts PVC_LABELS on
spec.template.spec.dataStore.volumeClaimTemplate.metadata.labels (the template is a whole
corev1.PersistentVolumeClaim, crdbnode_types.go DataStore), and the rehearsal manifest rewrites them to the
rehearsal's name and environment. Every PVC is checked again before its delete: one that does not carry the
rehearsal cluster's labels is refused, whatever the selector or the server returned.
ASSUMPTION (no public source shows it, the kind workflow proves it): the operator copies the template's labels
onto the PVCs it creates, as a StatefulSet does; the reset says so when it deleted a cluster but found no PVC.

Importing this module never imports Dagster: what the resource does with its fields lives here, in
CrdbOperatorMethods. Two classes hold the fields: CrdbOperatorResource (the Dagster resource, in
operator_resource.py, which imports this module and never the other way)
and CrdbOperatorBackend (the same fields as a plain dataclass), through which `python -m evolution_pipeline plan`
reads the cluster. Importing Dagster costs ~2 CPU-seconds per call (tests/plan/test_plan_imports.py keeps it
out).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from evolution_pipeline.phases import PHASES, REPO_ROOT
from evolution_pipeline.resources import kube
from evolution_pipeline.resources.cluster_control import (
    LIVE,
    REHEARSAL,
    ClusterControl,
    ClusterControlError,
    ClusterStatus,
    NodeStatus,
    ScaleDownRefused,
)

if TYPE_CHECKING:  # only for annotations: the package is imported on first use (kube.py)
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "crdb.cockroachlabs.com", "v1beta1"
CLUSTERS, NODES, PVCS, PODS = "crdbclusters", "crdbnodes", "persistentvolumeclaims", "pods"
CORE_RESOURCES = (PVCS, PODS)
CLUSTER_LABEL = "crdb.cockroachlabs.com/cluster"
# The one field a scale changes (spec.regions[0].nodes); set_desired_nodes and the plan patch it alike.
NODES_POINTER = "/spec/regions/0/nodes"
# Set by us on the volume claim template (k8s/crdb-cluster.yaml): the reset never relies on operator labels.
PVC_CLUSTER_LABEL = "crdb-live-evolution.io/crdb-cluster"
PVC_ENVIRONMENT_LABEL = "crdb-live-evolution.io/environment"
# Where the operator chart installs the operator and its webhook (mk/kind.mk OPERATOR_NS; helm-charts
# cockroachdb-parent/charts/operator/templates/operator.yaml: cockroach-webhook-config,
# cockroach-webhook-service).
OPERATOR_HINT = (
    "kubectl -n crdb-operator get pods,svc; kubectl -n crdb-operator logs deploy/cockroach-operator"
)
REHEARSAL_ANNOTATION = "crdb-live-evolution/environment"
RBAC_FILE = "k8s/pipeline/rbac.yaml"
CLUSTER_MANIFEST = "k8s/crdb-cluster.yaml"
JSON_PATCH = "application/json-patch+json"
PATCH_ATTEMPTS = 5

# Exactly what this module calls during an evolution (scale + status); tests check every request against it.
# No watch: status() is polled, one GET and one LIST per observation.
REQUIRED_RBAC_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [GROUP], "resources": [CLUSTERS], "verbs": ["get", "patch"]},
    {"apiGroups": [GROUP], "resources": [NODES], "verbs": ["list"]},
    {"apiGroups": [""], "resources": [PODS], "verbs": ["list"]},
]

# What the rehearsal reset calls. Grant these ONLY in the rehearsal namespace, never in the live one: the
# live namespace then cannot be reset even by a misconfigured pipeline.
REHEARSAL_RBAC_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [GROUP], "resources": [CLUSTERS], "verbs": ["create", "delete", "get"]},
    {"apiGroups": [GROUP], "resources": [NODES], "verbs": ["list"]},
    {"apiGroups": [""], "resources": [PVCS], "verbs": ["delete", "list"]},
]


# What the node-loss drill (evolution_pipeline/drills) calls: delete one CockroachDB pod, which the operator
# recreates. Granted in the rehearsal namespace; in the live one only by whoever enables
# EVOLUTION_NODE_LOSS_DRILL (k8s/pipeline/rbac.yaml says how).
DRILL_RBAC_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [""], "resources": [PODS], "verbs": ["delete"]},
]


@dataclass(frozen=True)
class ApiCall:
    """One Kubernetes API call, named the way RBAC and error messages need it."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str = ""

    def __str__(self) -> str:
        target = f"{self.resource}/{self.name}" if self.name else self.resource
        return f"{self.verb} {target} in namespace {self.namespace}"

    def rbac_rule(self) -> str:
        return f'apiGroups: ["{self.group}"], resources: ["{self.resource}"], verbs: ["{self.verb}"]'


def _server_message(exc: ApiException) -> str:
    """The Status message the API server sent, or whatever text came back."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return (exc.body or exc.reason or "").strip()
    return str(body.get("message") or body) if isinstance(body, dict) else str(body)


def api_error(call: ApiCall, exc: ApiException) -> ClusterControlError:
    """Turn an ApiException into a message that names the call and says what to do."""
    said = _server_message(exc)
    code = exc.status
    if "admission webhook" in said and "denied the request" in said:
        # k8s.io/apiserver pkg/admission/plugin/webhook/errors ToStatusErr: 'admission webhook "<name>"
        # denied the request: <reason>', with the webhook's code (>= 400; 403 from controller-runtime's
        # admission.Denied): matched on the words, so a webhook's 403 is never taken for missing RBAC.
        hint = (
            "the CockroachDB operator's admission webhook refused the change; its reason is below. Fix the "
            f"CrdbCluster or the requested value, check `{OPERATOR_HINT}`, then re-execute from failure"
        )
    elif "failed calling webhook" in said:
        # k8s.io/apiserver webhook dispatcher: a webhook that cannot be called fails the request (500
        # "Internal error occurred: failed calling webhook ...") when its failurePolicy is Fail.
        hint = (
            "the API server could not reach the CockroachDB operator's admission webhook, so nothing "
            "changed. Make sure the operator pod is Running and its webhook Service has endpoints "
            f"(`{OPERATOR_HINT}`), then re-execute from failure"
        )
    elif code == 401:
        hint = "the API server rejected the credentials: check the kubeconfig/context or the service account"
    elif code == 403:
        hint = (
            f"the RBAC rule {{{call.rbac_rule()}}} is missing for this identity in namespace "
            f"{call.namespace}; grant it in {RBAC_FILE} and `kubectl apply -f {RBAC_FILE}`"
        )
    elif code == 404 and call.verb == "create":
        hint = (
            f"namespace {call.namespace} or the crdbclusters.{GROUP} CRD does not exist: "
            "create the namespace (k8s/00-namespaces.yaml) and install the CockroachDB operator first"
        )
    elif code == 404 and call.resource == CLUSTERS:
        hint = (
            f"CrdbCluster {call.namespace}/{call.name} does not exist: apply {CLUSTER_MANIFEST} first "
            f"(`kubectl apply -f {CLUSTER_MANIFEST}`) or fix namespace/cluster_name in the resource config; "
            f"if the server does not know crdbclusters.{GROUP} at all, install the CockroachDB operator first"
        )
    elif code == 404:
        hint = (
            f"not found: is the CockroachDB operator ({GROUP}/{VERSION}) installed and the namespace right?"
        )
    elif code == 409:
        hint = "conflict: another writer changed the object; re-run when it has settled"
    elif code == 422:
        hint = "the API server rejected the object as invalid"
    elif code is not None and code >= 500:
        hint = (
            "the API server failed; retry, and check the API server and the operator's webhook if it persists"
        )
    else:
        hint = "unexpected answer from the API server"
    return ClusterControlError(
        f"{call} failed with HTTP {code} {exc.reason or ''}: {hint}. Server said: {said}"
    )


def unreachable_error(call: ApiCall, host: str, exc: Exception) -> ClusterControlError:
    return ClusterControlError(
        f"{call} failed: the Kubernetes API server at {host} is unreachable ({type(exc).__name__}: {exc}); "
        "check the kubeconfig/context, the network path, and that the cluster is up"
    )


def _regions(cluster: dict, what: str) -> list[dict]:
    regions = (cluster.get("spec") or {}).get("regions") or []
    if not regions:
        raise ClusterControlError(f"{what} has no spec.regions[0]; fix the manifest ({CLUSTER_MANIFEST})")
    return regions


def _condition(obj: dict, kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def pod_state(pod: dict | None) -> tuple[bool, str]:
    """(ready, words) for a CrdbNode's pod: Ready=True in status.conditions (core v1 PodCondition)."""
    if pod is None:
        return False, "pod not created yet"
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False, "pod terminating"
    cond = _condition(pod, "Ready")
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    ready = cond is not None and cond.get("status") == "True"
    return ready, f"pod {phase}, Ready={cond.get('status') if cond else 'unknown'}"


def node_status(node: dict, pod: dict | None = None, *, check_pod: bool = False) -> NodeStatus:
    """One CrdbNode as the pipeline sees it: ready only when PodReady=True, it is not being deleted and,
    with check_pod, its pod (same name) is Ready too."""
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    ready_cond = _condition(node, "PodReady")
    if ready_cond is None:
        details = ["no PodReady condition yet"]
    else:
        since = ready_cond.get("lastTransitionTime")
        details = [f"PodReady={ready_cond.get('status')}" + (f" since {since}" if since else "")]
    details += [
        f"{c.get('type')}={c.get('status')}" for c in status.get("conditions") or [] if c is not ready_cond
    ]
    if status.get("nodeID") is not None:
        details.append(f"nodeID {status['nodeID']}")
    if status.get("decommission"):
        details.append(f"decommission: {status['decommission']}")
    deleting = bool(meta.get("deletionTimestamp"))
    if deleting:
        details.append("being deleted")
    ready = ready_cond is not None and ready_cond.get("status") == "True" and not deleting
    if check_pod:
        # The CrdbNode's condition can lag its pod (or run ahead of it): both must say Ready.
        pod_ready, words = pod_state(pod)
        details.append(words)
        ready = ready and pod_ready
    return NodeStatus(name=meta.get("name", "?"), ready=ready, detail=", ".join(details))


class OperatorClusterControl(ClusterControl):
    """Drives one CrdbCluster through the Kubernetes API (CustomObjectsApi, CoreV1Api for PVCs)."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        namespace: str,
        cluster_name: str,
        *,
        environment: str = LIVE,
        live_namespace: str = "crdb",
        live_cluster_name: str = "cockroachdb",
        request_timeout_seconds: float = 30.0,
        reset_timeout_seconds: float = 900.0,
        poll_interval_seconds: float = 5.0,
        cluster_manifest: Path | str = REPO_ROOT / CLUSTER_MANIFEST,
        conflict_backoff_seconds: float = 0.2,
    ) -> None:
        self.api_client = api_client
        self.custom = kube.client().CustomObjectsApi(api_client)
        self.core = kube.client().CoreV1Api(api_client)
        self.namespace = namespace
        self.cluster_name = cluster_name
        self.environment = environment
        self.live_namespace = live_namespace
        self.live_cluster_name = live_cluster_name
        self.request_timeout = request_timeout_seconds
        self.reset_timeout = reset_timeout_seconds
        self.poll_interval = poll_interval_seconds
        self.cluster_manifest = Path(cluster_manifest)
        self.node_selector = f"{CLUSTER_LABEL}={cluster_name}"
        self.pvc_labels = {PVC_CLUSTER_LABEL: cluster_name, PVC_ENVIRONMENT_LABEL: environment}
        self.pvc_selector = ",".join(f"{k}={v}" for k, v in self.pvc_labels.items())
        self.conflict_backoff = conflict_backoff_seconds

    # --- plumbing ------------------------------------------------------------------------------------------

    def _call(self, verb: str, resource: str, name: str = "") -> ApiCall:
        group = "" if resource in CORE_RESOURCES else GROUP
        return ApiCall(verb, group, resource, self.namespace, name)

    def _do(
        self, call: ApiCall, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """Make one API call; errors become ClusterControlError. missing_ok: a 404 returns None."""
        import urllib3  # loaded with the Kubernetes client (kube.py) by now; not when this module is imported

        try:
            return fn(*args, _request_timeout=self.request_timeout, **kwargs)
        except kube.api_exception() as exc:
            if missing_ok and exc.status == 404:
                return None
            raise api_error(call, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise unreachable_error(call, self.api_client.configuration.host, exc) from exc

    def _get_cluster(self, missing_ok: bool = False) -> dict | None:
        return self._do(
            self._call("get", CLUSTERS, self.cluster_name),
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            CLUSTERS,
            self.cluster_name,
            missing_ok=missing_ok,
        )

    def _list_nodes(self) -> list[dict]:
        listing = self._do(
            self._call("list", NODES),
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            NODES,
            label_selector=self.node_selector,
        )
        return sorted(listing.get("items") or [], key=lambda n: (n.get("metadata") or {}).get("name", ""))

    def _list_pods(self) -> dict[str, dict]:
        """The cluster's pods by name, as plain dicts (the operator labels them like its CrdbNodes)."""
        listing = self._do(
            self._call("list", PODS),
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=self.node_selector,
        )
        pods = [self.api_client.sanitize_for_serialization(p) for p in listing.items]
        return {(p.get("metadata") or {}).get("name", ""): p for p in pods}

    # --- ClusterControl ------------------------------------------------------------------------------------

    def describe(self) -> str:
        return f"CrdbCluster {self.namespace}/{self.cluster_name}"

    def desired_nodes(self) -> int:
        return int(_regions(self._get_cluster(), self.describe())[0].get("nodes") or 0)

    def set_desired_nodes(self, nodes: int) -> None:
        import urllib3  # loaded with the Kubernetes client (kube.py) by now; not when this module is imported

        call = self._call("patch", CLUSTERS, self.cluster_name)
        for attempt in range(1, PATCH_ATTEMPTS + 1):
            cluster = self._get_cluster()
            current = int(_regions(cluster, self.describe())[0].get("nodes") or 0)
            if cluster["metadata"].get("deletionTimestamp"):
                raise ClusterControlError(f"{self.describe()} is being deleted; it cannot be scaled")
            if current == nodes:
                return  # someone (a previous attempt, a person) already asked for it
            if nodes < current:
                # Re-checked after every read: a concurrent writer may have grown the cluster meanwhile.
                raise ScaleDownRefused(
                    f"{self.describe()} now asks for {current} nodes; refusing to patch it down to {nodes}"
                )
            patch = [
                # A resourceVersion in a patch is a precondition: 409 if the object changed since we read it.
                {
                    "op": "replace",
                    "path": "/metadata/resourceVersion",
                    "value": cluster["metadata"]["resourceVersion"],
                },
                {"op": "replace", "path": NODES_POINTER, "value": nodes},
            ]
            try:
                # The client would send a list body as merge-patch; JSON patch must be asked for explicitly.
                self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    CLUSTERS,
                    self.cluster_name,
                    patch,
                    _content_type=JSON_PATCH,
                    _request_timeout=self.request_timeout,
                )
                return
            except kube.api_exception() as exc:
                if exc.status != 409:
                    raise api_error(call, exc) from exc
                if attempt == PATCH_ATTEMPTS:
                    raise ClusterControlError(
                        f"{call} kept conflicting ({PATCH_ATTEMPTS} attempts, re-reading each time): "
                        "another writer "
                        f"keeps changing {self.describe()}; find it (kubectl get crdbcluster -w) and re-run. "
                        f"Server said: {_server_message(exc)}"
                    ) from exc
                time.sleep(self.conflict_backoff * attempt)
            except urllib3.exceptions.HTTPError as exc:
                raise unreachable_error(call, self.api_client.configuration.host, exc) from exc

    def status(self) -> ClusterStatus:
        cluster = self._get_cluster()
        raw_nodes, pods = self._list_nodes(), self._list_pods()
        nodes = tuple(
            node_status(n, pods.get((n.get("metadata") or {}).get("name", "")), check_pod=True)
            for n in raw_nodes
        )
        desired = int(_regions(cluster, self.describe())[0].get("nodes") or 0)
        live_nodes = [n for n in raw_nodes if not (n.get("metadata") or {}).get("deletionTimestamp")]
        # Settled: the operator has made exactly the CrdbNodes asked for (observable, unlike status fields).
        settled = len(live_nodes) == desired
        notes = []
        if not settled:
            notes.append(f"{len(live_nodes)} CrdbNodes labelled {self.node_selector} for {desired} desired")
        orphans = sorted(set(pods) - {(n.get("metadata") or {}).get("name") for n in raw_nodes})
        if orphans:
            notes.append(f"pods without a CrdbNode: {', '.join(orphans)}")
        if (cluster.get("metadata") or {}).get("deletionTimestamp"):
            notes.append("the CrdbCluster is being deleted")
        notes.append(self._status_hint(cluster))
        return ClusterStatus(
            desired_nodes=desired,
            ready_nodes=sum(n.ready for n in nodes),
            settled=settled,
            nodes=nodes,
            message="; ".join(notes),
        )

    # --- the node-loss drill (evolution_pipeline/drills/nodes.py) -------------------------------------------

    def _crdbnode_running(self, index: int) -> dict:
        """The CrdbNode running CockroachDB node `index` (its status.nodeID, crdbnode_types.go)."""
        for node in self._list_nodes():
            if (node.get("status") or {}).get("nodeID") == index:
                return node
        raise ClusterControlError(
            f"no CrdbNode of {self.describe()} reports nodeID {index}: `kubectl -n {self.namespace} get "
            "crdbnodes -o yaml` shows each one's status.nodeID"
        )

    def stop_node(self, index: int) -> str:
        """Delete node `index`'s pod; the operator recreates it with the same name and volume (helm-charts
        cockroachdb-parent/README.md "Kill a CockroachDB Node": `kubectl delete pod`). Never node 1: it ran
        init and holds the nodelocal://1 backups."""
        if index == 1:
            raise ClusterControlError("refusing to delete node 1's pod: it holds the backups (nodelocal://1)")
        name = (self._crdbnode_running(index).get("metadata") or {}).get("name", "")
        self._do(self._call("delete", PODS, name), self.core.delete_namespaced_pod, name, self.namespace)
        return f"pod {self.namespace}/{name} (node {index}) deleted; the operator recreates it"

    def restart_node(self, index: int) -> str:
        return (f"nothing to start for node {index}: the operator recreates a deleted pod; the drill waits "
                "until its CrdbNode and pod are Ready again")

    @staticmethod
    def _status_hint(cluster: dict) -> str:
        """The operator's own status fields, for the log only: no public source shows it writes them."""
        meta, observed = cluster.get("metadata") or {}, cluster.get("status") or {}
        if not observed:
            return "operator status: not written (hint only)"
        keys = ("readyNodes", "observedGeneration", "reconciled")
        fields = ", ".join(f"{k}={observed[k]}" for k in keys if k in observed) or "no fields"
        return f"operator status (hint only): {fields} at generation {meta.get('generation')}"

    # --- the rehearsal reset: the only destructive step ----------------------------------------------------

    def _guard_rehearsal(self) -> None:
        where = f"{self.describe()} (environment {self.environment!r})"
        if self.environment != REHEARSAL:
            raise ClusterControlError(
                f"refusing to reset {where}: only the {REHEARSAL!r} environment may be reset"
            )
        if self.namespace == self.live_namespace:
            why = (
                "it IS the live cluster"
                if self.cluster_name == self.live_cluster_name
                else "it shares the namespace of the live cluster "
                f"{self.live_namespace}/{self.live_cluster_name}"
            )
            raise ClusterControlError(
                f"refusing to reset {where}: {why}; give the rehearsal its own namespace"
            )

    def rehearsal_manifest(self) -> dict:
        """k8s/crdb-cluster.yaml rewritten for the rehearsal: its name and namespace, phase 0's nodes."""
        try:
            docs = [d for d in yaml.safe_load_all(self.cluster_manifest.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterControlError(
                f"cannot read the CrdbCluster manifest {self.cluster_manifest}: {exc}"
            ) from exc
        found = [
            d for d in docs if d.get("kind") == "CrdbCluster" and d.get("apiVersion") == f"{GROUP}/{VERSION}"
        ]
        if len(found) != 1:
            raise ClusterControlError(
                f"{self.cluster_manifest} must hold exactly one {GROUP}/{VERSION} CrdbCluster "
                f"(found {len(found)})"
            )
        cluster = copy.deepcopy(found[0])
        cluster.pop("status", None)
        old_meta = cluster.get("metadata") or {}
        cluster["metadata"] = {
            "name": self.cluster_name,
            "namespace": self.namespace,
            "labels": dict(old_meta.get("labels") or {}),
            "annotations": {**(old_meta.get("annotations") or {}), REHEARSAL_ANNOTATION: REHEARSAL},
        }
        regions = _regions(cluster, str(self.cluster_manifest))
        for region in regions:
            region["namespace"] = self.namespace  # --join must point at the rehearsal's own nodes
        regions[0]["nodes"] = PHASES[0].nodes
        claim = ((cluster.get("spec") or {}).get("template") or {}).get("spec", {}).get("dataStore", {})
        claim = claim.get("volumeClaimTemplate")
        if claim is not None:
            # The reset finds the rehearsal's volumes by these labels, and only by these.
            claim.setdefault("metadata", {}).setdefault("labels", {}).update(self.pvc_labels)
        return cluster

    def _wait_until(self, what: str, remaining: Callable[[], list[str]]) -> None:
        deadline = time.monotonic() + self.reset_timeout
        while True:
            left = remaining()
            if not left:
                return
            if time.monotonic() >= deadline:
                raise ClusterControlError(
                    f"rehearsal reset: {what} still present after {self.reset_timeout:.0f}s: "
                    f"{', '.join(left)}; check the operator's logs and finalizers"
                )
            time.sleep(self.poll_interval)

    def _remaining_cluster_and_nodes(self) -> list[str]:
        left = [f"{CLUSTERS}/{self.cluster_name}"] if self._get_cluster(missing_ok=True) is not None else []
        return left + [f"{NODES}/{n['metadata']['name']}" for n in self._list_nodes()]

    def _list_pvcs(self) -> list[dict]:
        listing = self._do(
            self._call("list", PVCS),
            self.core.list_namespaced_persistent_volume_claim,
            self.namespace,
            label_selector=self.pvc_selector,
        )
        return sorted(
            (self.api_client.sanitize_for_serialization(p) for p in listing.items),
            key=lambda p: p["metadata"]["name"],
        )

    def _pvc_names(self) -> list[str]:
        return [p["metadata"]["name"] for p in self._list_pvcs()]

    def _delete_pvc(self, pvc: dict) -> None:
        meta = pvc.get("metadata") or {}
        labels = meta.get("labels") or {}
        wrong = {k: labels.get(k) for k, v in self.pvc_labels.items() if labels.get(k) != v}
        if wrong or meta.get("namespace", self.namespace) != self.namespace:
            # Belt and braces: whatever the selector returned, only the rehearsal's own volumes go.
            raise ClusterControlError(
                f"refusing to delete PVC {meta.get('namespace')}/{meta.get('name')}: it does not carry the "
                f"rehearsal cluster's labels {self.pvc_selector} (it has {wrong}); nothing else was deleted"
            )
        # missing_ok: the operator may have deleted it meanwhile.
        self._do(
            self._call("delete", PVCS, meta["name"]),
            self.core.delete_namespaced_persistent_volume_claim,
            meta["name"],
            self.namespace,
            missing_ok=True,
        )

    def reset_rehearsal_environment(self) -> str:
        self._guard_rehearsal()
        # Read the manifest before deleting anything: a broken manifest must not leave no cluster at all.
        manifest = self.rehearsal_manifest()
        existing = self._get_cluster(missing_ok=True)
        if existing is not None:
            marker = ((existing.get("metadata") or {}).get("annotations") or {}).get(REHEARSAL_ANNOTATION)
            if marker != REHEARSAL:
                raise ClusterControlError(
                    f"refusing to reset {self.describe()}: it lacks the annotation "
                    f"{REHEARSAL_ANNOTATION}={REHEARSAL} "
                    "that marks a rehearsal cluster. If it really is the rehearsal, run `kubectl annotate "
                    f"crdbcluster/{self.cluster_name} -n {self.namespace} {REHEARSAL_ANNOTATION}={REHEARSAL}`"
                )
            self._do(
                self._call("delete", CLUSTERS, self.cluster_name),
                self.custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                CLUSTERS,
                self.cluster_name,
                propagation_policy="Foreground",
            )
        self._wait_until("the CrdbCluster or its CrdbNodes", self._remaining_cluster_and_nodes)
        # The operator deletes a node's PVC by default; this catches whatever a Retain policy left behind.
        pvcs = self._list_pvcs()
        for pvc in pvcs:
            self._delete_pvc(pvc)
        self._wait_until(f"PVCs labelled {self.pvc_selector}", self._pvc_names)
        self._do(
            self._call("create", CLUSTERS),
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            CLUSTERS,
            manifest,
        )
        message = (
            f"reset {self.describe()}: {'deleted the cluster' if existing else 'no cluster existed'}, "
            f"deleted {len(pvcs)} leftover PVC(s), recreated it from {self.cluster_manifest.name} "
            f"with {PHASES[0].nodes} node(s)"
        )
        if existing is not None and not pvcs:
            # With whenDeleted: Retain the old volumes stay; none matching means the selector may be wrong.
            message += (
                f". No PVC matched {self.pvc_selector}: if volumes were left behind without these labels "
                f"(kubectl -n {self.namespace} get pvc --show-labels), the operator did not copy the "
                "labels of dataStore.volumeClaimTemplate.metadata; delete them by hand after checking them"
            )
        return message


def build_api_client(kubeconfig: str | None, context: str | None) -> k8s_client.ApiClient:
    """Explicit kubeconfig, else in-cluster config (inside a pod), else the default kubeconfig."""
    configuration = kube.client().Configuration()
    if kubeconfig:
        source = f"kubeconfig {kubeconfig}" + (f" (context {context})" if context else "")
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        source = "the in-cluster service account"
    else:
        source = "the default kubeconfig ($KUBECONFIG or ~/.kube/config)" + (
            f" (context {context})" if context else ""
        )
    try:
        if kubeconfig:
            kube.config().load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube.config().load_incluster_config(client_configuration=configuration)
        else:
            kube.config().load_kube_config(
                context=context, client_configuration=configuration, persist_config=False
            )
    except (kube.config().ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        raise ClusterControlError(
            f"cannot load Kubernetes credentials from {source}: {exc}. "
            "Set the resource's kubeconfig/context, or "
            "run the pipeline in a pod with a service account bound by k8s/pipeline/rbac.yaml"
        ) from exc
    return kube.client().ApiClient(configuration)


class CrdbOperatorMethods:
    """What the operator backend's configuration does, over the fields its class holds: CrdbOperatorResource
    (Dagster, operator_resource.py) and CrdbOperatorBackend (plain, below) declare the same fields.

    No field is declared here: a pydantic model (the resource) would take a base class's annotations for
    fields of its own. The names below are for type checkers only.
    """

    if TYPE_CHECKING:
        environment: str
        ready_timeout_seconds: float
        poll_interval_seconds: float
        namespace: str
        cluster_name: str
        kubeconfig: str | None
        context: str | None
        live_namespace: str
        live_cluster_name: str
        request_timeout_seconds: float
        cluster_manifest: str

    def describe_offline(self) -> str:
        return f"CrdbCluster {self.namespace}/{self.cluster_name}"

    def scale_commands(self, current: int, target: int) -> list[str]:
        """The kubectl equivalent of set_desired_nodes: the same JSON patch on the same field (the pipeline
        also puts the resourceVersion it read into the patch, as a precondition)."""
        if current == 0:  # the CrdbCluster is applied by hand at phase 0's size (k8s/README.md)
            return [f"kubectl apply -f {Path(self.cluster_manifest).as_posix()}",
                    f"kubectl -n {self.namespace} get crdbnodes,pods -l {CLUSTER_LABEL}={self.cluster_name} -w"]
        patch = json.dumps([{"op": "replace", "path": NODES_POINTER, "value": target}])
        return [f"kubectl -n {self.namespace} patch crdbcluster {self.cluster_name} --type=json -p '{patch}'",
                f"kubectl -n {self.namespace} get crdbnodes,pods -l {CLUSTER_LABEL}={self.cluster_name} -w"]

    def control(self) -> OperatorClusterControl:
        if self.environment not in (LIVE, REHEARSAL):
            raise ClusterControlError(
                f"unknown environment {self.environment!r}: use {LIVE!r} or {REHEARSAL!r}"
            )
        if self.environment == REHEARSAL and self.namespace == self.live_namespace:
            raise ClusterControlError(
                f"the rehearsal points at the live namespace {self.live_namespace!r} "
                f"(cluster {self.cluster_name!r}); "
                "configure the rehearsal with its own namespace"
            )
        manifest = Path(self.cluster_manifest)
        return OperatorClusterControl(
            build_api_client(self.kubeconfig, self.context),
            self.namespace,
            self.cluster_name,
            environment=self.environment,
            live_namespace=self.live_namespace,
            live_cluster_name=self.live_cluster_name,
            request_timeout_seconds=self.request_timeout_seconds,
            reset_timeout_seconds=self.ready_timeout_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
            cluster_manifest=manifest if manifest.is_absolute() else REPO_ROOT / manifest,
        )


@dataclass(frozen=True)
class CrdbOperatorBackend(CrdbOperatorMethods):
    """The operator backend's configuration without Dagster (the plan command): CrdbOperatorResource's fields
    and defaults, its methods."""

    environment: str = LIVE  # which evolution this drives; only a rehearsal may ever be reset
    ready_timeout_seconds: float = 900.0
    poll_interval_seconds: float = 5.0
    namespace: str = "crdb"  # namespace of the CrdbCluster
    cluster_name: str = "cockroachdb"  # metadata.name of the CrdbCluster
    kubeconfig: str | None = None  # unset: in-cluster config inside a pod, else the default
    context: str | None = None  # kubeconfig context; unset: the current context
    live_namespace: str = "crdb"  # the LIVE cluster's namespace; a rehearsal must never use it
    live_cluster_name: str = "cockroachdb"  # the LIVE CrdbCluster's name
    request_timeout_seconds: float = 30.0  # timeout of each Kubernetes API request
    # CrdbCluster manifest the rehearsal reset recreates from (relative to the repo root).
    cluster_manifest: str = CLUSTER_MANIFEST
