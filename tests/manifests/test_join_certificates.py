"""Every CrdbCluster the project creates has a node certificate that names the operator's join Service.

The operator joins new nodes through the Service <cluster>-join; the chart's own node certificate lists
<cluster>-join, <cluster>-join.<ns> and <cluster>-join.<ns>.svc.<clusterDomain> (cockroachdb/helm-charts
cockroachdb-parent/charts/cockroachdb/templates/certificate.node.yaml; pkg/generator/generate_cert.go
GenerateNodeCert, operatorJoinServiceHosts). Without them a new node fails TLS verification when it joins,
so a scale-up never finishes. The names are derived from the CrdbCluster manifests, so renaming the
cluster or a namespace cannot drift from the certificates.
"""

from __future__ import annotations

import pytest

from evolution_pipeline.phases import REPO_ROOT
from evolution_pipeline.resources.cluster import REHEARSAL
from evolution_pipeline.resources.operator import OperatorClusterControl
from tests.manifests.support import crdb_cluster, docs, find_all

# The chart's clusterDomain default (cockroachdb-parent/charts/cockroachdb/values.yaml), kind's too.
CLUSTER_DOMAIN = "cluster.local"


def rehearsal_namespace() -> str:
    values = docs("pipeline/dagster-values.yaml")[0].body
    env = values["dagster-user-deployments"]["deployments"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "REHEARSAL_CRDB_NAMESPACE")


def clusters() -> list[dict]:
    """The live CrdbCluster as applied, and the rehearsal one exactly as the reset creates it."""
    live = crdb_cluster()
    rehearsal = OperatorClusterControl(
        api_client=None,  # rehearsal_manifest() only reads the file
        namespace=rehearsal_namespace(),
        cluster_name=live["metadata"]["name"],
        environment=REHEARSAL,
        cluster_manifest=REPO_ROOT / "k8s" / "crdb-cluster.yaml",
    ).rehearsal_manifest()
    return [live, rehearsal]


def join_names(name: str, namespace: str) -> list[str]:
    return [f"{name}-join", f"{name}-join.{namespace}", f"{name}-join.{namespace}.svc.{CLUSTER_DOMAIN}"]


def node_certificate(cluster: dict) -> dict:
    namespace = cluster["metadata"]["namespace"]
    secret = cluster["spec"]["template"]["spec"]["certificates"]["externalCertificates"]["nodeSecretName"]
    found = [
        c
        for c in find_all("Certificate")
        if c["metadata"].get("namespace") == namespace and c["spec"]["secretName"] == secret
    ]
    assert len(found) == 1, f"expected one Certificate for Secret {namespace}/{secret}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("cluster", clusters(), ids=lambda c: c["metadata"]["namespace"])
def test_node_certificate_names_the_join_service(cluster):
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    cert = node_certificate(cluster)
    missing = [n for n in join_names(name, namespace) if n not in cert["spec"]["dnsNames"]]
    assert not missing, f"{cert['metadata']['name']} in {namespace} lacks the join names {missing}"
    # Nodes present this certificate to each other when they join: it must also be a client certificate.
    assert {"server auth", "client auth"} <= set(cert["spec"]["usages"])
    assert cert["spec"]["commonName"] == "node"


def test_every_cluster_namespace_has_its_certificates():
    namespaces = {c["metadata"]["namespace"] for c in clusters()}
    certified = {c["metadata"]["namespace"] for c in find_all("Certificate")}
    assert namespaces <= certified and len(namespaces) == 2
