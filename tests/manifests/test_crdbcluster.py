"""The CrdbCluster against the project's v1beta1 schema (built from the operator's API types), including
negative cases, and its embedded Kubernetes types against the real Kubernetes schemas."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from evolution_pipeline.phases import PHASES
from tests.manifests.support import KUBERNETES_VERSION, crdb_cluster, errors, validator

CRDB = validator("crdbcluster-v1beta1.schema.json")


def problems(body: dict) -> list[str]:
    return errors(CRDB, body)


def mutated(change) -> dict:
    body = copy.deepcopy(crdb_cluster())
    change(body)
    return body


def test_the_crdbcluster_validates():
    assert problems(crdb_cluster()) == []


def test_it_is_the_contract_cluster_at_phase_zero():
    cluster = crdb_cluster()
    assert cluster["apiVersion"] == "crdb.cockroachlabs.com/v1beta1"
    assert (cluster["metadata"]["namespace"], cluster["metadata"]["name"]) == ("crdb", "cockroachdb")
    (region,) = cluster["spec"]["regions"]
    assert region["nodes"] == PHASES[0].nodes
    assert region["namespace"] == "crdb"
    assert "cloudProvider" not in region, "kind nodes have no cloud provider: it would prefix the locality"


def test_secure_by_default():
    spec = crdb_cluster()["spec"]
    assert spec["tlsEnabled"] is True
    certs = spec["template"]["spec"]["certificates"]["externalCertificates"]
    assert set(certs) >= {"caConfigMapName", "nodeSecretName", "rootSqlClientSecretName", "httpSecretName"}


def test_the_image_is_pinned():
    image = crdb_cluster()["spec"]["template"]["spec"]["image"]
    repo, _, tag = image.rpartition(":")
    assert repo == "cockroachdb/cockroach"
    assert tag.count(".") == 2 and tag.split(".")[2].isdigit(), "a pinned patch release"
    # The one pin is versions.toml; tests/manifests/test_version_pin.py checks every other reference.


def test_locality_mappings_cover_region_and_zone():
    mappings = crdb_cluster()["spec"]["template"]["spec"]["localityMappings"]
    assert {(m["nodeLabel"], m["localityLabel"]) for m in mappings} == {
        ("topology.kubernetes.io/region", "region"),
        ("topology.kubernetes.io/zone", "zone"),
    }


def test_prometheus_scrape_annotations_point_at_status_vars():
    annotations = crdb_cluster()["spec"]["template"]["spec"]["podTemplate"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/_status/vars"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/scheme"] == "https"


def test_resources_fit_a_laptop():
    (container,) = crdb_cluster()["spec"]["template"]["spec"]["podTemplate"]["spec"]["containers"]
    assert container["name"] == "cockroachdb", "the operator merges podTemplate containers by name"
    limits = container["resources"]["limits"]
    assert limits["memory"].endswith("Gi") and int(limits["memory"][:-2]) <= 4
    assert container["resources"]["requests"]["memory"]


# --- embedded Kubernetes types: the real Kubernetes schemas, strictly ---------------------------------------


def test_pod_template_spec_is_a_valid_pod_spec():
    template = crdb_cluster()["spec"]["template"]["spec"]["podTemplate"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", **template["metadata"]},
        "spec": template["spec"],
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_volume_claim_template_is_a_valid_pvc():
    claim = copy.deepcopy(crdb_cluster()["spec"]["template"]["spec"]["dataStore"]["volumeClaimTemplate"])
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claim}
    kubernetes_validate.validate(pvc, KUBERNETES_VERSION, strict=True)
    assert claim["spec"]["resources"]["requests"]["storage"]


def test_a_misspelt_field_in_the_pod_template_is_caught():
    template = copy.deepcopy(crdb_cluster()["spec"]["template"]["spec"]["podTemplate"])
    template["spec"]["containers"][0]["resource"] = template["spec"]["containers"][0].pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]},
            KUBERNETES_VERSION,
            strict=True,
        )


# --- negative cases: the schema fails when it should --------------------------------------------------------


def _drop(path: list):
    def change(body):
        node = body
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


@pytest.mark.parametrize(
    "path",
    [
        ["spec", "regions"],
        ["spec", "regions", 0, "code"],
        ["spec", "regions", 0, "nodes"],
        ["spec", "regions", 0, "namespace"],
        ["spec", "template"],
        ["spec", "template", "spec", "image"],
        ["spec", "template", "spec", "dataStore"],
        ["spec", "template", "spec", "certificates"],
        ["spec", "template", "spec", "certificates", "externalCertificates", "nodeSecretName"],
        ["spec", "template", "spec", "certificates", "externalCertificates", "rootSqlClientSecretName"],
        ["metadata", "namespace"],
    ],
    ids=lambda p: ".".join(map(str, p)),
)
def test_missing_required_field_fails(path):
    assert problems(mutated(_drop(path))), f"dropping {path} should fail validation"


@pytest.mark.parametrize(
    "change,why",
    [
        (lambda b: b["spec"]["regions"][0].__setitem__("nodes", -1), "nodes has minimum 0"),
        (lambda b: b["spec"]["regions"][0].__setitem__("nodes", "3"), "nodes is an integer"),
        (lambda b: b["spec"]["regions"][0].__setitem__("code", ""), "code has minLength 1"),
        (lambda b: b["spec"].__setitem__("regions", []), "at least one region"),
        (lambda b: b["spec"].__setitem__("mode", "Auto"), "mode enum"),
        (lambda b: b["spec"].__setitem__("node", 3), "unknown spec field (v1alpha1's spec.nodes)"),
        (lambda b: b["spec"]["template"]["spec"].__setitem__("localityMapping", []), "misspelt field"),
        (
            lambda b: b["spec"]["template"]["spec"]["dataStore"].__setitem__(
                "volumeSource", {"emptyDir": {}}
            ),
            "dataStore takes exactly one of volumeSource / volumeClaimTemplate",
        ),
        (
            lambda b: b["spec"]["template"]["spec"]["persistentVolumeClaimRetentionPolicy"].__setitem__(
                "whenDeleted", "Keep"
            ),
            "whenDeleted enum",
        ),
        (lambda b: b["spec"].__setitem__("rollingRestartDelay", "soon"), "duration format"),
        (lambda b: b.__setitem__("apiVersion", "crdb.cockroachlabs.com/v1alpha1"), "the old operator's API"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_invalid_values_fail(change, why):
    assert problems(mutated(change)), why


def test_insecure_cluster_without_certificates_is_valid_only_with_tls_off():
    """The schema ties certificates to tlsEnabled; the repository itself never ships tlsEnabled: false."""

    def insecure(body):
        body["spec"]["tlsEnabled"] = False
        del body["spec"]["template"]["spec"]["certificates"]

    assert problems(mutated(insecure)) == []

    def tls_without_certs(body):
        del body["spec"]["template"]["spec"]["certificates"]

    assert problems(mutated(tls_without_certs))
