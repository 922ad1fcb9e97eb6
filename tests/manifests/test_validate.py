"""Every YAML file under k8s/ parses; built-in kinds validate strictly against Kubernetes 1.30; every custom
kind is checked against a schema the project keeps in k8s/schemas/."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.manifests.support import (
    CUSTOM_KINDS,
    K8S,
    KUBERNETES_VERSION,
    SCHEMAS,
    custom_validator,
    errors,
    manifest_docs,
    yaml_files,
)

FILES = yaml_files()
DOCS = manifest_docs()


def validate_builtin(body: dict) -> None:
    kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


def is_builtin(body: dict) -> bool:
    try:
        validate_builtin(body)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


def test_the_manifests_are_all_there():
    names = {str(p.relative_to(K8S.parent)) for p in FILES}
    for expected in [
        "crdb-cluster.yaml",
        "services.yaml",
        "loadgen-job.yaml",
        "license-job.yaml",
        "license-secret.example.yaml",
        "00-namespaces.yaml",
        "crdb-rbac.yaml",
        "tls/00-ca.yaml",
        "tls/10-certificates.yaml",
        "tls/20-ca-bundle.yaml",
        "app/00-namespace.yaml",
        "app/configmap.yaml",
        "app/secret.yaml",
        "app/deployment.yaml",
        "app/service.yaml",
        "app/optional/hpa.yaml",
        "pipeline/rbac.yaml",
        "pipeline/dagster-values.yaml",
        "kind/kind-config.yaml",
    ]:
        assert any(n.endswith(f"k8s/{expected}") for n in names), expected


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p).split("/k8s/")[-1])
def test_every_yaml_file_parses(path):
    loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert loaded, f"{path} holds no YAML document"
    for d in loaded:
        assert isinstance(d, dict), f"{path}: a document is a {type(d).__name__}, not a mapping"


@pytest.mark.parametrize("doc", DOCS, ids=str)
def test_every_object_validates(doc):
    """Built-in kinds: kubernetes-validate --strict (unknown fields fail). Others: our schema for the kind."""
    try:
        validate_builtin(doc.body)
        return
    except kubernetes_validate.SchemaNotFoundError:
        pass
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{doc}: {exc}")
    key = (doc.api_version, doc.kind)
    assert key in CUSTOM_KINDS, (
        f"{doc}: {key} is neither a Kubernetes {KUBERNETES_VERSION} kind nor a custom kind "
        f"with a schema in k8s/schemas/ (add one and list it in CUSTOM_KINDS)"
    )
    problems = errors(custom_validator(*key), doc.body)
    assert not problems, f"{doc}:\n" + "\n".join(problems)


def test_all_kept_schemas_are_valid_json_schemas():
    for path in SCHEMAS.glob("*.json"):
        import json

        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


# --- the checks themselves can fail -------------------------------------------------------------------------


def test_strict_validation_rejects_an_unknown_field():
    service = copy.deepcopy(next(d.body for d in DOCS if d.kind == "Service"))
    service["spec"]["selektor"] = service["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(service)


def test_strict_validation_rejects_a_wrong_type():
    deployment = copy.deepcopy(next(d.body for d in DOCS if d.kind == "Deployment"))
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(deployment)


def test_custom_kinds_are_not_mistaken_for_built_in_ones():
    assert not is_builtin(
        {"apiVersion": "crdb.cockroachlabs.com/v1beta1", "kind": "CrdbCluster", "metadata": {"name": "x"}}
    )


@pytest.mark.parametrize("kind,field", [("Certificate", "secretName"), ("Certificate", "issuerRef")])
def test_cert_manager_schema_requires_fields(kind, field):
    cert = copy.deepcopy(next(d.body for d in DOCS if d.kind == kind))
    assert not errors(custom_validator(cert["apiVersion"], kind), cert)
    del cert["spec"][field]
    assert errors(custom_validator(cert["apiVersion"], kind), cert)


def test_cert_manager_schema_rejects_unknown_usage_and_two_issuer_types():
    cert = copy.deepcopy(next(d.body for d in DOCS if d.kind == "Certificate"))
    cert["spec"]["usages"] = ["server-auth"]
    assert errors(custom_validator("cert-manager.io/v1", "Certificate"), cert)
    issuer = copy.deepcopy(next(d.body for d in DOCS if d.kind == "ClusterIssuer"))
    issuer["spec"] = {"selfSigned": {}, "ca": {"secretName": "x"}}
    assert errors(custom_validator("cert-manager.io/v1", "ClusterIssuer"), issuer)
    namespaced = copy.deepcopy(next(d.body for d in DOCS if d.kind == "ClusterIssuer"))
    namespaced["metadata"]["namespace"] = "crdb"
    assert errors(custom_validator("cert-manager.io/v1", "ClusterIssuer"), namespaced), (
        "ClusterIssuers are cluster-scoped"
    )


def test_bundle_schema_requires_a_target():
    bundle = copy.deepcopy(next(d.body for d in DOCS if d.kind == "Bundle"))
    del bundle["spec"]["target"]
    assert errors(custom_validator("trust.cert-manager.io/v1alpha1", "Bundle"), bundle)
