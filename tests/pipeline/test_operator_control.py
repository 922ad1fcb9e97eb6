"""The operator cluster control through the real `kubernetes` client against the stand-in API server.

The stand-in (tests/doubles/k8s_api.py) enforces RBAC from Role rules, so "the flow succeeds with exactly
REQUIRED_RBAC_RULES" and "the flow used exactly these verbs" are both checked, keeping the constant (and the
Role built from it) truthful.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import jsonschema
import kubernetes
import pytest
import yaml

from evolution_pipeline.phases import PHASES, REPO_ROOT
from evolution_pipeline.resources.cluster import (
    REHEARSAL,
    ClusterControlError,
    ClusterStatus,
    ScaleDownRefused,
)
from evolution_pipeline.resources.operator import (
    CLUSTER_LABEL,
    CLUSTERS,
    NODES,
    OPERATOR_HINT,
    PATCH_ATTEMPTS,
    PODS,
    PVC_CLUSTER_LABEL,
    PVC_ENVIRONMENT_LABEL,
    PVCS,
    REHEARSAL_ANNOTATION,
    REHEARSAL_RBAC_RULES,
    REQUIRED_RBAC_RULES,
    OperatorClusterControl,
    node_status,
)
from evolution_pipeline.resources.operator_resource import CrdbOperatorResource
from tests.doubles.k8s_api import SERVICE_ACCOUNT, KubeApiDouble

LIVE_NS, NAME = "crdb", "cockroachdb"
REHEARSAL_NS = "crdb-rehearsal"
JSON_PATCH_TYPE = "application/json-patch+json"


def expand(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def ours(environment: str, name: str = NAME) -> dict[str, str]:
    """The labels k8s/crdb-cluster.yaml (or the rehearsal rewrite of it) puts on the volume claim template."""
    return {PVC_CLUSTER_LABEL: name, PVC_ENVIRONMENT_LABEL: environment}


def client_for(host: str) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    configuration.host = host
    return kubernetes.client.ApiClient(configuration)


def control_for(
    api: KubeApiDouble, namespace: str = LIVE_NS, name: str = NAME, **kwargs
) -> OperatorClusterControl:
    kwargs.setdefault("poll_interval_seconds", 0.02)
    kwargs.setdefault("reset_timeout_seconds", 5)
    kwargs.setdefault("conflict_backoff_seconds", 0.01)
    return OperatorClusterControl(client_for(api.host), namespace, name, request_timeout_seconds=5, **kwargs)


def wait_ready(control: OperatorClusterControl, target: int, timeout: float = 5.0) -> ClusterStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = control.status()
        if status.is_ready(target):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready for {target} within {timeout}s: {status.summary()}")
        time.sleep(0.02)


@pytest.fixture
def api():
    with KubeApiDouble(rbac_rules=REQUIRED_RBAC_RULES) as server:
        yield server


# --- scaling and readiness --------------------------------------------------------------------------------


def test_grows_one_two_three_and_reports_ready_only_when_the_operator_caught_up(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    control = control_for(api)
    assert wait_ready(control, 1).ready_nodes == 1

    for target in (2, 3):
        api.operator_running = False
        assert control.scale_to(target) is True
        right_after = control.status()
        # The operator has not acted yet: the new generation is not observed, so never "ready" here.
        assert right_after.desired_nodes == target and not right_after.settled
        assert not right_after.is_ready(target)
        api.operator_running = True
        ready = wait_ready(control, target)
        assert ready.ready_nodes == target and len(ready.nodes) == target
        assert all(n.ready and "PodReady=True" in n.detail for n in ready.nodes)

    cluster = api.get(CLUSTERS, LIVE_NS, NAME)
    assert cluster["spec"]["regions"] == [{"code": "local", "nodes": 3, "namespace": LIVE_NS}]
    assert cluster["spec"]["template"]["spec"]["image"].startswith("cockroachdb/cockroach:")
    assert cluster["metadata"]["generation"] == 3
    patches = [r for r in api.requests if r.verb == "patch"]
    assert len(patches) == 2 and {r.content_type for r in patches} == {"application/json-patch+json"}
    assert control.desired_nodes() == 3


def test_scale_is_idempotent_and_sends_no_patch_when_already_there(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    control = control_for(api)
    assert control.scale_to(PHASES[0].nodes) is False
    assert api.count("patch", CLUSTERS) == 0
    assert control.scale_to(2) is True
    assert control.scale_to(2) is False
    assert api.count("patch", CLUSTERS) == 1


def test_scale_down_is_refused_before_any_patch(api):
    api.add_cluster(LIVE_NS, NAME, nodes=3)
    control = control_for(api)
    with pytest.raises(ScaleDownRefused, match="refusing to scale down"):
        control.scale_to(2)
    with pytest.raises(ScaleDownRefused, match="refusing to patch it down"):
        control.set_desired_nodes(2)  # the backend re-checks after its own read, too
    assert api.count("patch", CLUSTERS) == 0
    assert api.get(CLUSTERS, LIVE_NS, NAME)["spec"]["regions"][0]["nodes"] == 3


def test_status_explains_an_operator_that_has_not_acted():
    with KubeApiDouble(reconcile_delay=60) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        control = control_for(api)
        control.scale_to(2)
        status = control.status()
    assert (status.desired_nodes, status.ready_nodes, status.settled) == (2, 1, False)
    assert "1 CrdbNodes labelled crdb.cockroachlabs.com/cluster=cockroachdb for 2 desired" in status.message
    assert "operator status: not written (hint only)" in status.message
    assert "not yet observed" in status.summary()


def test_nodes_that_never_become_ready_are_reported_with_their_conditions():
    with KubeApiDouble() as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        api.never_ready = True
        control = control_for(api)
        control.scale_to(2)
        deadline = time.monotonic() + 3
        while not (status := control.status()).settled or len(status.nodes) < 2:
            assert time.monotonic() < deadline, status.summary()
            time.sleep(0.02)
        time.sleep(0.2)  # well past node_ready_delay: it stays not ready
        status = control.status()
    assert status.settled and status.desired_nodes == 2 and status.ready_nodes == 1
    assert not status.is_ready(2)
    stuck = [n for n in status.nodes if not n.ready]
    assert len(stuck) == 1 and "PodReady=False" in stuck[0].detail and "PodRunning=False" in stuck[0].detail
    assert "pod Pending, Ready=False" in stuck[0].detail
    assert f"{stuck[0].name}=not ready (PodReady=False" in status.summary()


def test_node_status_reads_the_crdbnode_conditions():
    base = {
        "metadata": {"name": "cockroachdb-abc"},
        "status": {
            "nodeID": 4,
            "conditions": [
                {"type": "PodRunning", "status": "True"},
                {"type": "PodReady", "status": "True", "lastTransitionTime": "2026-11-22T04:00:00Z"},
            ],
        },
    }
    assert node_status(base).ready and "nodeID 4" in node_status(base).detail
    deleting = {**base, "metadata": {"name": "x", "deletionTimestamp": "2026-11-22T04:01:00Z"}}
    assert not node_status(deleting).ready and "being deleted" in node_status(deleting).detail
    fresh = {"metadata": {"name": "y"}, "status": {}}
    assert not node_status(fresh).ready and "no PodReady condition yet" in node_status(fresh).detail


# --- API errors --------------------------------------------------------------------------------------------


def test_forbidden_patch_names_the_missing_rbac_rule():
    rules = [
        {"apiGroups": ["crdb.cockroachlabs.com"], "resources": ["crdbclusters"], "verbs": ["get"]},
        {"apiGroups": ["crdb.cockroachlabs.com"], "resources": ["crdbnodes"], "verbs": ["list"]},
    ]
    with KubeApiDouble(rbac_rules=rules) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        with pytest.raises(ClusterControlError) as err:
            control_for(api).scale_to(2)
    text = str(err.value)
    assert "patch crdbclusters/cockroachdb in namespace crdb" in text and "HTTP 403" in text
    assert 'apiGroups: ["crdb.cockroachlabs.com"], resources: ["crdbclusters"], verbs: ["patch"]' in text
    assert "k8s/pipeline/rbac.yaml" in text
    assert 'cannot patch resource "crdbclusters"' in text  # the server's own words are kept
    assert f'User "{SERVICE_ACCOUNT}"' in text


def test_the_stand_in_speaks_as_the_real_service_account():
    account = next(
        d
        for d in yaml.safe_load_all((REPO_ROOT / "k8s/pipeline/rbac.yaml").read_text())
        if d and d["kind"] == "ServiceAccount"
    )
    meta = account["metadata"]
    assert SERVICE_ACCOUNT == f"system:serviceaccount:{meta['namespace']}:{meta['name']}"


def test_forbidden_node_list_names_that_rule():
    rules = [
        {"apiGroups": ["crdb.cockroachlabs.com"], "resources": ["crdbclusters"], "verbs": ["get", "patch"]}
    ]
    with KubeApiDouble(rbac_rules=rules) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        with pytest.raises(ClusterControlError) as err:
            control_for(api).status()
    assert "list crdbnodes in namespace crdb" in str(err.value)
    assert 'resources: ["crdbnodes"], verbs: ["list"]' in str(err.value)


def test_missing_cluster_says_what_to_apply(api):
    control = control_for(api)
    for call in (control.desired_nodes, control.status, lambda: control.scale_to(1)):
        with pytest.raises(ClusterControlError) as err:
            call()
        assert "get crdbclusters/cockroachdb in namespace crdb" in str(err.value)
        assert "HTTP 404" in str(err.value) and "kubectl apply -f k8s/crdb-cluster.yaml" in str(err.value)


def test_conflicts_are_retried_on_a_fresh_read_and_keep_the_other_writers_change(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    api.interfere_with_next_patches(2)
    control = control_for(api)
    assert control.scale_to(2) is True
    assert [r.code for r in api.requests if r.verb == "patch"] == [409, 409, 200]
    cluster = api.get(CLUSTERS, LIVE_NS, NAME)
    assert cluster["spec"]["regions"][0]["nodes"] == 2
    assert cluster["metadata"]["annotations"]["example.com/other-writer"] == "2"
    wait_ready(control, 2)


def test_a_conflict_that_persists_is_reported(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    api.interfere_with_next_patches(PATCH_ATTEMPTS + 5)
    with pytest.raises(ClusterControlError, match=f"kept conflicting \\({PATCH_ATTEMPTS} attempts"):
        control_for(api).scale_to(2)
    assert api.count("patch", CLUSTERS) == PATCH_ATTEMPTS
    assert api.get(CLUSTERS, LIVE_NS, NAME)["spec"]["regions"][0]["nodes"] == 1


def test_server_errors_name_the_call(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    api.fail_next("get", CLUSTERS, 500, message="etcdserver: request timed out")
    with pytest.raises(ClusterControlError) as err:
        control_for(api).status()
    assert "get crdbclusters/cockroachdb in namespace crdb failed with HTTP 500" in str(err.value)
    assert "etcdserver: request timed out" in str(err.value)


def test_invalid_patch_answer_is_reported():
    with KubeApiDouble() as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        api.fail_next(
            "patch", CLUSTERS, 422, message='CrdbCluster "cockroachdb" is invalid: admission webhook said no'
        )
        with pytest.raises(
            ClusterControlError, match="rejected the object as invalid.*admission webhook said no"
        ):
            control_for(api).scale_to(2)


def test_unreachable_api_server_is_said_plainly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = 0
    control = OperatorClusterControl(
        kubernetes.client.ApiClient(configuration), LIVE_NS, NAME, request_timeout_seconds=2
    )
    with pytest.raises(ClusterControlError, match=f"API server at http://127.0.0.1:{port} is unreachable"):
        control.desired_nodes()


def test_a_cluster_being_deleted_is_not_scaled():
    with KubeApiDouble(delete_delay=60) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        custom_api(api).delete_namespaced_custom_object(
            "crdb.cockroachlabs.com", "v1beta1", LIVE_NS, CLUSTERS, NAME, propagation_policy="Foreground"
        )
        control = control_for(api)
        with pytest.raises(ClusterControlError, match="is being deleted; it cannot be scaled"):
            control.scale_to(2)
        assert api.count("patch", CLUSTERS) == 0
        assert "the CrdbCluster is being deleted" in control.status().message


# --- RBAC truthfulness -------------------------------------------------------------------------------------


def test_the_evolution_uses_exactly_the_required_rbac_rules(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    control = control_for(api)
    for phase in PHASES:
        control.scale_to(phase.nodes)
        wait_ready(control, phase.nodes)
    control.scale_to(PHASES[-1].nodes)  # the idempotent re-run path too
    assert all(r.code < 400 for r in api.requests), [r for r in api.requests if r.code >= 400]
    assert api.seen() == expand(REQUIRED_RBAC_RULES)


# --- rehearsal reset ---------------------------------------------------------------------------------------

MANIFEST = {
    "apiVersion": "crdb.cockroachlabs.com/v1beta1",
    "kind": "CrdbCluster",
    "metadata": {"name": NAME, "namespace": LIVE_NS, "labels": {"app.kubernetes.io/name": "cockroachdb"}},
    "spec": {
        "tlsEnabled": True,
        "regions": [{"code": "local", "nodes": 3, "namespace": LIVE_NS}],
        "template": {
            "spec": {
                "image": "cockroachdb/cockroach:v26.2.1",
                "dataStore": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "10Gi"}},
                        }
                    }
                },
            }
        },
    },
}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "crdb-cluster.yaml"
    other = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LIVE_NS}}
    path.write_text(yaml.safe_dump_all([other, MANIFEST]))
    return path


@pytest.fixture
def reset_api():
    with KubeApiDouble(
        rbac_rules=REQUIRED_RBAC_RULES + REHEARSAL_RBAC_RULES, pvc_retention="Retain"
    ) as server:
        server.add_cluster(LIVE_NS, NAME, nodes=3, pvc_labels=ours("live"))
        yield server


def rehearsal_control(api, manifest, namespace=REHEARSAL_NS, name=NAME, **kwargs):
    kwargs.setdefault("environment", REHEARSAL)
    return control_for(
        api,
        namespace,
        name,
        live_namespace=LIVE_NS,
        live_cluster_name=NAME,
        cluster_manifest=manifest,
        **kwargs,
    )


def test_reset_recreates_the_rehearsal_and_leaves_the_live_cluster_alone(reset_api, manifest):
    api = reset_api
    old = api.add_cluster(
        REHEARSAL_NS, NAME, nodes=3, annotations={REHEARSAL_ANNOTATION: REHEARSAL}, pvc_labels=ours(REHEARSAL)
    )
    live_before = api.get(CLUSTERS, LIVE_NS, NAME)
    live_pvcs, old_pvcs = api.names(PVCS, LIVE_NS), api.names(PVCS, REHEARSAL_NS)
    assert len(live_pvcs) == 3 and len(old_pvcs) == 3
    first = len(api.requests)

    message = rehearsal_control(api, manifest).reset_rehearsal_environment()

    assert "deleted the cluster" in message and "3 leftover PVC(s)" in message
    fresh = api.get(CLUSTERS, REHEARSAL_NS, NAME)
    assert fresh["metadata"]["uid"] != old["metadata"]["uid"] and fresh["metadata"]["generation"] == 1
    assert fresh["metadata"]["annotations"][REHEARSAL_ANNOTATION] == REHEARSAL
    assert fresh["spec"]["regions"] == [
        {"code": "local", "nodes": PHASES[0].nodes, "namespace": REHEARSAL_NS}
    ]
    claim = fresh["spec"]["template"]["spec"]["dataStore"]["volumeClaimTemplate"]
    assert claim["metadata"]["labels"] == ours(REHEARSAL)  # the next reset finds its volumes by these
    assert fresh["spec"]["tlsEnabled"] is True
    assert {k: v for k, v in fresh["spec"]["template"]["spec"].items() if k != "dataStore"} == {
        k: v for k, v in MANIFEST["spec"]["template"]["spec"].items() if k != "dataStore"
    }
    assert not set(old_pvcs) & set(api.names(PVCS, REHEARSAL_NS))
    # The live cluster, its nodes and its volumes are untouched.
    assert api.get(CLUSTERS, LIVE_NS, NAME) == live_before
    assert api.names(PVCS, LIVE_NS) == live_pvcs and len(api.names(NODES, LIVE_NS)) == 3
    touched = {r.namespace for r in api.requests[first:]}
    assert touched == {REHEARSAL_NS}
    assert {(r.group, r.resource, r.verb) for r in api.requests[first:]} == expand(REHEARSAL_RBAC_RULES)
    # Only the "is it gone yet?" reads may answer 404; nothing was forbidden.
    assert all(
        r.code < 400 or (r.verb, r.resource, r.code) == ("get", CLUSTERS, 404) for r in api.requests[first:]
    )

    wait_ready(rehearsal_control(api, manifest), PHASES[0].nodes)
    again = rehearsal_control(api, manifest).reset_rehearsal_environment()  # the next night
    assert "deleted the cluster" in again


def test_reset_creates_the_rehearsal_when_none_exists(reset_api, manifest):
    message = rehearsal_control(reset_api, manifest).reset_rehearsal_environment()
    assert "no cluster existed" in message
    assert reset_api.get(CLUSTERS, REHEARSAL_NS, NAME)["spec"]["regions"][0]["nodes"] == 1
    assert reset_api.count("delete", CLUSTERS) == 0


@pytest.mark.parametrize(
    "environment, namespace, name, why",
    [
        ("live", REHEARSAL_NS, NAME, "only the 'rehearsal' environment may be reset"),
        (REHEARSAL, LIVE_NS, NAME, "it IS the live cluster"),
        (REHEARSAL, LIVE_NS, "rehearsal", "shares the namespace of the live cluster crdb/cockroachdb"),
    ],
)
def test_reset_refuses_anything_but_a_separate_rehearsal(
    reset_api, manifest, environment, namespace, name, why
):
    reset_api.add_cluster(namespace, name, nodes=1, annotations={REHEARSAL_ANNOTATION: REHEARSAL}) if (
        namespace,
        name,
    ) != (LIVE_NS, NAME) else None
    first = len(reset_api.requests)
    control = rehearsal_control(reset_api, manifest, namespace=namespace, name=name, environment=environment)
    with pytest.raises(ClusterControlError, match="refusing to reset") as err:
        control.reset_rehearsal_environment()
    assert why in str(err.value)
    assert reset_api.requests[first:] == []  # refused before a single request
    assert len([p for p in reset_api.names(PVCS, LIVE_NS) if p.startswith(f"datadir-{NAME}-")]) == 3


def test_reset_refuses_a_cluster_not_marked_as_rehearsal(reset_api, manifest):
    reset_api.add_cluster(REHEARSAL_NS, NAME, nodes=2)
    with pytest.raises(ClusterControlError, match=f"kubectl annotate crdbcluster/{NAME} -n {REHEARSAL_NS}"):
        rehearsal_control(reset_api, manifest).reset_rehearsal_environment()
    assert reset_api.count("delete", CLUSTERS) == reset_api.count("delete", PVCS) == 0
    assert reset_api.get(CLUSTERS, REHEARSAL_NS, NAME) is not None


def test_reset_with_a_broken_manifest_deletes_nothing(reset_api, tmp_path):
    reset_api.add_cluster(REHEARSAL_NS, NAME, nodes=1, annotations={REHEARSAL_ANNOTATION: REHEARSAL})
    broken = tmp_path / "crdb-cluster.yaml"
    broken.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: crdb}\n")
    with pytest.raises(
        ClusterControlError, match="must hold exactly one crdb.cockroachlabs.com/v1beta1 CrdbCluster"
    ):
        rehearsal_control(reset_api, broken).reset_rehearsal_environment()
    assert reset_api.count("delete", CLUSTERS) == 0 and reset_api.get(CLUSTERS, REHEARSAL_NS, NAME)


def test_reset_that_never_finishes_deleting_times_out_with_what_is_left(manifest):
    with KubeApiDouble(delete_delay=60) as api:
        api.add_cluster(REHEARSAL_NS, NAME, nodes=1, annotations={REHEARSAL_ANNOTATION: REHEARSAL})
        control = rehearsal_control(api, manifest, reset_timeout_seconds=0.3)
        with pytest.raises(
            ClusterControlError, match="still present after 0s: crdbclusters/cockroachdb, crdbnodes/"
        ):
            control.reset_rehearsal_environment()


def test_the_repositorys_manifest_is_what_the_reset_recreates(reset_api):
    """The default k8s/crdb-cluster.yaml, rewritten, still satisfies the CrdbCluster schema and the server."""
    control = rehearsal_control(reset_api, REPO_ROOT / "k8s" / "crdb-cluster.yaml")
    cluster = control.rehearsal_manifest()
    schema = json.loads((REPO_ROOT / "k8s" / "schemas" / "crdbcluster-v1beta1.schema.json").read_text())
    problems = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(cluster)]
    assert problems == []
    assert cluster["metadata"]["name"] == NAME and cluster["metadata"]["namespace"] == REHEARSAL_NS
    assert cluster["spec"]["regions"][0]["nodes"] == PHASES[0].nodes
    assert {r["namespace"] for r in cluster["spec"]["regions"]} == {REHEARSAL_NS}
    live = yaml.safe_load((REPO_ROOT / "k8s" / "crdb-cluster.yaml").read_text())
    live_claim = live["spec"]["template"]["spec"]["dataStore"]["volumeClaimTemplate"]["metadata"]["labels"]
    claim = cluster["spec"]["template"]["spec"]["dataStore"]["volumeClaimTemplate"]["metadata"]["labels"]
    assert live_claim == ours("live") and claim == ours(REHEARSAL)
    assert cluster["spec"]["template"]["spec"]["image"] == live["spec"]["template"]["spec"]["image"]

    control.reset_rehearsal_environment()
    wait_ready(control, PHASES[0].nodes)


# --- the Dagster resource ----------------------------------------------------------------------------------


def kubeconfig(path: Path, host: str, token: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "elsewhere",
                "clusters": [
                    {"name": "stand-in", "cluster": {"server": host}},
                    {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}},
                ],
                "users": [
                    {"name": "pipeline", "user": {"token": token}},
                    {"name": "stranger", "user": {"token": "wrong"}},
                ],
                "contexts": [
                    {"name": "stand-in", "context": {"cluster": "stand-in", "user": "pipeline"}},
                    {"name": "stranger", "context": {"cluster": "stand-in", "user": "stranger"}},
                    {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "pipeline"}},
                ],
            }
        )
    )
    return path


def test_resource_builds_a_control_from_a_kubeconfig_context(tmp_path):
    with KubeApiDouble(token="s3cret", rbac_rules=REQUIRED_RBAC_RULES) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        config = kubeconfig(tmp_path / "kubeconfig", api.host, "s3cret")
        resource = CrdbOperatorResource(
            kubeconfig=str(config), context="stand-in", poll_interval_seconds=0.02
        )
        control = resource.control()
        assert control.describe() == "CrdbCluster crdb/cockroachdb"
        assert control.scale_to(2) is True
        wait_ready(control, 2)
        assert {r.authorization for r in api.requests} == {"Bearer s3cret"}

        stranger = CrdbOperatorResource(kubeconfig=str(config), context="stranger").control()
        with pytest.raises(ClusterControlError, match="HTTP 401.*rejected the credentials"):
            stranger.desired_nodes()


def test_resource_refuses_a_rehearsal_pointing_at_the_live_namespace():
    resource = CrdbOperatorResource(environment=REHEARSAL, namespace=LIVE_NS, cluster_name="other")
    with pytest.raises(ClusterControlError, match="rehearsal points at the live namespace 'crdb'"):
        resource.control()
    with pytest.raises(ClusterControlError, match="unknown environment 'staging'"):
        CrdbOperatorResource(environment="staging").control()


def test_resource_says_where_credentials_were_looked_for(tmp_path, monkeypatch):
    with pytest.raises(
        ClusterControlError, match="cannot load Kubernetes credentials from kubeconfig .*missing"
    ):
        CrdbOperatorResource(kubeconfig=str(tmp_path / "missing")).control()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(
        kubernetes.config.incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "no-token")
    )
    with pytest.raises(ClusterControlError, match="in-cluster service account"):
        CrdbOperatorResource().control()


def test_resource_passes_its_settings_through(tmp_path):
    with KubeApiDouble() as api:
        config = kubeconfig(tmp_path / "kubeconfig", api.host, "t")
        control = CrdbOperatorResource(
            kubeconfig=str(config),
            context="stand-in",
            environment=REHEARSAL,
            namespace=REHEARSAL_NS,
            cluster_name="rehearsal",
            ready_timeout_seconds=42,
            poll_interval_seconds=0.5,
            cluster_manifest="k8s/crdb-cluster.yaml",
        ).control()
    assert (control.namespace, control.cluster_name, control.environment) == (
        REHEARSAL_NS,
        "rehearsal",
        REHEARSAL,
    )
    assert (control.reset_timeout, control.poll_interval) == (42, 0.5)
    assert control.cluster_manifest == REPO_ROOT / "k8s" / "crdb-cluster.yaml"
    assert control.node_selector == f"{CLUSTER_LABEL}=rehearsal"
    assert control.pvc_selector == f"{PVC_CLUSTER_LABEL}=rehearsal,{PVC_ENVIRONMENT_LABEL}=rehearsal"


def test_reset_into_a_missing_namespace_says_what_to_create(manifest):
    with KubeApiDouble(namespaces=(LIVE_NS,)) as api:  # crdb-rehearsal was never created
        with pytest.raises(ClusterControlError) as err:
            rehearsal_control(api, manifest).reset_rehearsal_environment()
    assert "create crdbclusters in namespace crdb-rehearsal failed with HTTP 404" in str(err.value)
    assert "k8s/00-namespaces.yaml" in str(err.value)
    assert 'namespaces "crdb-rehearsal" not found' in str(err.value)


def test_reset_leaves_volumes_without_the_rehearsal_labels_and_says_so(reset_api, manifest):
    # A rehearsal cluster made from an older manifest: its volumes carry none of our labels.
    reset_api.add_cluster(REHEARSAL_NS, NAME, nodes=2, annotations={REHEARSAL_ANNOTATION: REHEARSAL})
    left = reset_api.names(PVCS, REHEARSAL_NS)
    message = rehearsal_control(reset_api, manifest).reset_rehearsal_environment()
    assert "deleted 0 leftover PVC(s)" in message and "No PVC matched" in message
    assert "--show-labels" in message
    assert len(left) == 2 and set(left) <= set(reset_api.names(PVCS, REHEARSAL_NS))
    assert reset_api.count("delete", PVCS) == 0


@pytest.mark.parametrize(
    "labels",
    [{}, ours("live"), ours(REHEARSAL, name="other"), {PVC_CLUSTER_LABEL: NAME}],
    ids=["unlabelled", "live", "another-cluster", "half"],
)
def test_reset_refuses_to_delete_a_volume_without_the_rehearsal_labels(reset_api, manifest, labels):
    """Whatever a selector returned, a PVC is deleted only when it carries the rehearsal cluster's labels."""
    control = rehearsal_control(reset_api, manifest)
    pvc = {"metadata": {"name": "datadir-x", "namespace": REHEARSAL_NS, "labels": labels}}
    with pytest.raises(ClusterControlError, match="refusing to delete PVC crdb-rehearsal/datadir-x"):
        control._delete_pvc(pvc)
    assert reset_api.count("delete", PVCS) == 0


def test_reset_never_sends_a_resource_version_on_create(reset_api, tmp_path):
    """A manifest exported by `kubectl get -o yaml` carries resourceVersion/uid; a server refuses those."""
    exported = {**MANIFEST, "metadata": {**MANIFEST["metadata"], "resourceVersion": "4242", "uid": "u-1"}}
    path = tmp_path / "crdb-cluster.yaml"
    path.write_text(yaml.safe_dump(exported))
    rehearsal_control(reset_api, path).reset_rehearsal_environment()
    assert [r.code for r in reset_api.requests if r.verb == "create"] == [201]


# --- the stand-in follows the API conventions the control relies on --------------------------------------


def custom_api(api: KubeApiDouble) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(client_for(api.host))


def patch(api, body, content_type):
    return custom_api(api).patch_namespaced_custom_object(
        "crdb.cockroachlabs.com", "v1beta1", LIVE_NS, CLUSTERS, NAME, body, _content_type=content_type
    )


def test_stand_in_merge_patch_replaces_whole_lists_which_is_why_the_control_uses_json_patch():
    with KubeApiDouble() as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        out = patch(
            api, {"spec": {"regions": [{"code": "local", "nodes": 2}]}}, "application/merge-patch+json"
        )
    assert out["spec"]["regions"] == [{"code": "local", "nodes": 2}]  # regions[0].namespace is gone


def test_stand_in_generation_follows_spec_only_and_status_is_a_subresource():
    with KubeApiDouble(reconcile_delay=60, status_writes="prompt") as api:
        before = api.add_cluster(LIVE_NS, NAME, nodes=1)
        out = patch(
            api,
            {"metadata": {"annotations": {"a": "b"}}, "status": {"readyNodes": 9}},
            "application/merge-patch+json",
        )
        assert out["metadata"]["generation"] == 1 and out["status"]["readyNodes"] == 1
        assert out["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
        same = patch(api, {"metadata": {"annotations": {"a": "b"}}}, "application/merge-patch+json")
        assert same["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]  # no-op write
        grown = patch(api, [{"op": "replace", "path": "/spec/regions/0/nodes", "value": 2}], JSON_PATCH_TYPE)
        assert grown["metadata"]["generation"] == 2 and grown["status"]["observedGeneration"] == 1


def test_stand_in_answers_errors_with_status_objects():
    with KubeApiDouble() as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        cases = [
            ({"spec": {}}, "application/strategic-merge-patch+json", 415, "UnsupportedMediaType"),
            ({"metadata": {"resourceVersion": "1"}}, "application/merge-patch+json", 409, "Conflict"),
            (
                [{"op": "replace", "path": "/spec/regions/0/nodes", "value": -1}],
                JSON_PATCH_TYPE,
                422,
                "Invalid",
            ),
            ([{"op": "test", "path": "/spec/regions/0/code", "value": "x"}], JSON_PATCH_TYPE, 422, "Invalid"),
        ]
        for body, content_type, code, reason in cases:
            with pytest.raises(kubernetes.client.ApiException) as err:
                patch(api, body, content_type)
            status = json.loads(err.value.body)
            assert (err.value.status, status["kind"], status["status"]) == (code, "Status", "Failure")
            assert (status["code"], status["reason"]) == (code, reason) and status["message"]


def test_stand_in_lists_by_label_selector(reset_api):
    reset_api.add_cluster(REHEARSAL_NS, "other", nodes=2)
    items = custom_api(reset_api).list_namespaced_custom_object(
        "crdb.cockroachlabs.com", "v1beta1", REHEARSAL_NS, NODES, label_selector=f"{CLUSTER_LABEL}=other"
    )["items"]
    assert len(items) == 2 and all(n["metadata"]["labels"][CLUSTER_LABEL] == "other" for n in items)
    none = custom_api(reset_api).list_namespaced_custom_object(
        "crdb.cockroachlabs.com", "v1beta1", REHEARSAL_NS, NODES, label_selector=f"{CLUSTER_LABEL}={NAME}"
    )["items"]
    assert none == []


# --- stricter stand-in modes: the control must pass every one -------------------------------------------

MODES = {
    "status-never-written": {"status_writes": "never"},
    "status-written-late": {"status_writes": "late", "status_delay": 0.4},
    "status-written-promptly": {"status_writes": "prompt"},
    "nodes-one-at-a-time": {"one_at_a_time": True, "reconcile_delay": 0.1},
    "pods-ready-after-the-crdbnode-says-so": {"pod_ready_lag": 0.3},
    "everything-slow-and-silent": {
        "status_writes": "never",
        "one_at_a_time": True,
        "reconcile_delay": 0.1,
        "pod_ready_lag": 0.2,
    },
}


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_the_evolution_reaches_every_phase_in_every_operator_mode(mode):
    with KubeApiDouble(rbac_rules=REQUIRED_RBAC_RULES, **mode) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        control = control_for(api)
        seen: list[str] = []
        for phase in PHASES:
            control.scale_to(phase.nodes)
            deadline = time.monotonic() + 10
            while not (status := control.status()).is_ready(phase.nodes):
                seen.append(status.summary())
                assert time.monotonic() < deadline, status.summary()
                time.sleep(0.02)
        final = control.status()
    assert final.ready_nodes == PHASES[-1].nodes and final.settled
    assert all("pod Running, Ready=True" in n.detail for n in final.nodes)
    # The progress the op logs names every node and what it waits for.
    assert any("not ready" in line for line in seen)
    assert all(n.name in final.summary() for n in final.nodes)


def test_a_pod_that_lags_its_crdbnode_keeps_the_cluster_not_ready():
    with KubeApiDouble(pod_ready_lag=60) as api:  # the CrdbNode says PodReady=True, the pod never is
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        control = control_for(api)
        control.scale_to(2)
        deadline = time.monotonic() + 3
        def ahead(n) -> bool:
            return "PodReady=True" in n.detail and "Ready=False" in n.detail

        while not any(ahead(n) for n in control.status().nodes):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status = control.status()
    assert status.settled and not status.is_ready(2) and status.ready_nodes == 1
    lagging = [n for n in status.nodes if not n.ready]
    assert len(lagging) == 1 and "pod Pending, Ready=False" in lagging[0].detail


def test_nodes_appearing_one_at_a_time_are_not_settled_until_all_are_there():
    with KubeApiDouble(one_at_a_time=True, reconcile_delay=0.3) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        control = control_for(api)
        control.scale_to(3)
        deadline = time.monotonic() + 5
        while len((status := control.status()).nodes) != 2:
            assert time.monotonic() < deadline, status.summary()
            time.sleep(0.02)
    assert not status.settled and not status.is_ready(3)
    assert "2 CrdbNodes labelled crdb.cockroachlabs.com/cluster=cockroachdb for 3 desired" in status.message


def test_status_fields_are_logged_as_hints_and_never_required():
    with KubeApiDouble(status_writes="prompt") as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        status = control_for(api).status()
    assert "operator status (hint only): readyNodes=1, observedGeneration=1 at generation 1" in status.message
    with KubeApiDouble(status_writes="never") as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)
        status = control_for(api).status()
    assert status.is_ready(1) and "operator status: not written (hint only)" in status.message


@pytest.mark.parametrize("code", [400, 403, 422])  # whatever code the webhook chose (at least 400)
def test_a_webhook_denial_says_what_to_do_and_changes_nothing(api, code):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    api.webhook_denial = "spec.regions[0].nodes: cannot change while a rolling restart is in progress"
    api.webhook_denial_code = code
    with pytest.raises(ClusterControlError) as err:
        control_for(api).scale_to(2)
    text = str(err.value)
    assert f"patch crdbclusters/cockroachdb in namespace crdb failed with HTTP {code}" in text
    assert "RBAC" not in text  # a 403 from a webhook is not a missing permission
    assert "operator's admission webhook refused the change" in text and "re-execute from failure" in text
    assert "denied the request: spec.regions[0].nodes: cannot change" in text  # its reason, verbatim
    assert OPERATOR_HINT in text
    assert api.get(CLUSTERS, LIVE_NS, NAME)["spec"]["regions"][0]["nodes"] == 1


def test_a_webhook_outage_says_what_to_do_and_changes_nothing(api):
    api.add_cluster(LIVE_NS, NAME, nodes=1)
    api.webhook_down = True
    with pytest.raises(ClusterControlError) as err:
        control_for(api).scale_to(2)
    text = str(err.value)
    assert "HTTP 500" in text and "failed calling webhook" in text
    assert "could not reach the CockroachDB operator's admission webhook" in text
    assert "re-execute from failure" in text and OPERATOR_HINT in text
    assert api.get(CLUSTERS, LIVE_NS, NAME)["spec"]["regions"][0]["nodes"] == 1
    api.webhook_down = False  # the operator is back: the same call converges
    assert control_for(api).scale_to(2) is True


def test_a_webhook_outage_fails_the_rehearsal_recreate_with_the_same_advice(reset_api, manifest):
    reset_api.webhook_down = True
    with pytest.raises(ClusterControlError, match="could not reach the CockroachDB operator's admission"):
        rehearsal_control(reset_api, manifest).reset_rehearsal_environment()


def test_stand_in_refuses_a_create_that_carries_a_resource_version():
    with KubeApiDouble() as api:
        body = {**MANIFEST, "metadata": {"name": "x", "namespace": LIVE_NS, "resourceVersion": "7"}}
        with pytest.raises(kubernetes.client.ApiException) as err:
            custom_api(api).create_namespaced_custom_object(
                "crdb.cockroachlabs.com", "v1beta1", LIVE_NS, CLUSTERS, body
            )
        assert err.value.status == 500
        assert json.loads(err.value.body)["message"] == (
            "resourceVersion should not be set on objects to be created"
        )
        assert api.get(CLUSTERS, LIVE_NS, "x") is None


def test_stand_in_lists_a_clusters_pods_by_label(api):
    api.add_cluster(LIVE_NS, NAME, nodes=2)
    pods = kubernetes.client.CoreV1Api(client_for(api.host)).list_namespaced_pod(
        LIVE_NS, label_selector=f"{CLUSTER_LABEL}={NAME}"
    )
    assert sorted(p.metadata.name for p in pods.items) == api.names(NODES, LIVE_NS)
    assert api.count("list", PODS) == 1
