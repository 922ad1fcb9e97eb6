"""Least privilege that holds: what the pipeline's identity may do, asked of an API server that enforces RBAC.

Dagster runs in its own namespace (k8s/pipeline/dagster-values.yaml, k8s/00-namespaces.yaml). The stand-in
API server (tests/doubles/k8s_api.py) is given exactly the rules bound to the pipeline's ServiceAccount: the
Roles k8s/pipeline/rbac.yaml binds in each namespace, and the Dagster chart's own Role (rbacEnabled) in the
namespace the chart is installed in. The real `kubernetes` client then asks it.
"""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client as k8s_client

from evolution_pipeline.phases import REPO_ROOT
from tests.doubles.k8s_api import (
    CHART_ROLE_RULES,
    SERVICE_ACCOUNT,
    KubeApiDouble,
    pipeline_roles,
    rule_allows,
)

RBAC = REPO_ROOT / "k8s" / "pipeline" / "rbac.yaml"
VALUES = REPO_ROOT / "k8s" / "pipeline" / "dagster-values.yaml"


def install_namespace() -> str:
    """Where the chart goes: the namespace of its run Jobs, which `make kind-pipeline` installs it into."""
    values = yaml.safe_load(VALUES.read_text())
    return values["runLauncher"]["config"]["k8sRunLauncher"]["jobNamespace"]


def roles_of_the_pipeline(dagster_ns: str) -> dict[str, list[dict]]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    meta = account["metadata"]
    assert SERVICE_ACCOUNT == f"system:serviceaccount:{meta['namespace']}:{meta['name']}"
    return pipeline_roles(docs, meta["name"], meta["namespace"], dagster_ns)


def core(api: KubeApiDouble) -> k8s_client.CoreV1Api:
    return k8s_client.CoreV1Api(k8s_client.ApiClient(k8s_client.Configuration(host=api.host)))


def custom(api: KubeApiDouble) -> k8s_client.CustomObjectsApi:
    return k8s_client.CustomObjectsApi(k8s_client.ApiClient(k8s_client.Configuration(host=api.host)))


@pytest.fixture
def api():
    with KubeApiDouble(
        rbac_roles=roles_of_the_pipeline(install_namespace()), pod_grace_seconds=0.05
    ) as server:
        server.add_cluster("crdb", "cockroachdb", nodes=3)
        server.add_cluster("crdb-rehearsal", "cockroachdb", nodes=3)
        server.add_pod(install_namespace(), "dagster-run-0123-abcde", {"dagster/job": "evolve"})
        yield server


def test_dagster_is_not_installed_in_a_cockroachdb_namespace():
    assert install_namespace() == "dagster"
    text = (REPO_ROOT / "k8s" / "00-namespaces.yaml").read_text()
    namespaces = {d["metadata"]["name"] for d in yaml.safe_load_all(text)}
    assert install_namespace() in namespaces


def test_the_pipeline_cannot_delete_or_create_a_pod_in_crdb(api):
    pod = api.names("pods", "crdb")[0]
    with pytest.raises(k8s_client.ApiException) as denied:
        core(api).delete_namespaced_pod(pod, "crdb")
    assert denied.value.status == 403
    message = json.loads(denied.value.body)["message"]
    assert f'User "{SERVICE_ACCOUNT}" cannot delete resource "pods"' in message
    assert message.endswith('in the namespace "crdb"')
    assert api.get("pods", "crdb", pod)["metadata"].get("deletionTimestamp") is None  # untouched
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intruder"}, "spec": {"containers": []}}
    with pytest.raises(k8s_client.ApiException) as denied:
        core(api).create_namespaced_pod("crdb", body)
    assert denied.value.status == 403


def test_what_the_pipeline_needs_in_crdb_is_allowed(api):
    assert len(core(api).list_namespaced_pod("crdb").items) == 3
    cluster = custom(api).get_namespaced_custom_object(
        "crdb.cockroachlabs.com", "v1beta1", "crdb", "crdbclusters", "cockroachdb"
    )
    assert cluster["spec"]["regions"][0]["nodes"] == 3
    with pytest.raises(k8s_client.ApiException) as denied:  # ...but never removing the live cluster
        custom(api).delete_namespaced_custom_object(
            "crdb.cockroachlabs.com", "v1beta1", "crdb", "crdbclusters", "cockroachdb"
        )
    assert denied.value.status == 403


def test_the_charts_role_reaches_only_dagsters_own_pods(api):
    """Deleting a run pod in Dagster's namespace is the chart's Role at work (it terminates gracefully)."""
    deleted = core(api).delete_namespaced_pod("dagster-run-0123-abcde", install_namespace())
    assert deleted.metadata.deletion_timestamp is not None
    for ns in ("crdb-demo", "default"):  # nothing about pods is granted anywhere else
        with pytest.raises(k8s_client.ApiException) as denied:
            core(api).list_namespaced_pod(ns)
        assert denied.value.status == 403


def test_the_node_loss_drill_may_delete_pods_in_the_rehearsal_namespace_only(api):
    pod = api.names("pods", "crdb-rehearsal")[0]
    deleted = core(api).delete_namespaced_pod(pod, "crdb-rehearsal")
    assert deleted.metadata.deletion_timestamp is not None


def test_installed_in_crdb_the_charts_role_would_let_every_run_pod_delete_cockroachdb(api):
    """Why Dagster has a namespace of its own: the same check, with the chart installed in crdb, fails."""
    roles = roles_of_the_pipeline("crdb")
    assert any(rule_allows(r, "delete", "", "pods", "cockroachdb-abc123") for r in roles["crdb"])
    with KubeApiDouble(rbac_roles=roles) as server:
        server.add_cluster("crdb", "cockroachdb", nodes=1)
        pod = server.names("pods", "crdb")[0]
        assert core(server).delete_namespaced_pod(pod, "crdb").metadata.deletion_timestamp is not None


def test_resource_names_limit_a_rule_to_those_objects():
    """kubernetes/kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go RuleAllows / ResourceNameMatches."""
    roles = roles_of_the_pipeline(install_namespace())
    demo = roles["crdb-demo"]
    assert any(rule_allows(r, "patch", "", "secrets", "sample-app-credentials") for r in demo)
    assert not any(rule_allows(r, "get", "", "secrets", "cockroachdb-root") for r in demo)
    assert not any(rule_allows(r, "list", "", "secrets", "") for r in demo)  # a list carries no name
    assert not any(rule_allows(r, "delete", "", "pods", "sample-app-1") for r in demo)
    assert any(rule_allows(r, "delete", "", "pods", "run-pod") for r in CHART_ROLE_RULES)
