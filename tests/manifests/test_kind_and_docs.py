"""The kind quick start keeps its install order, and k8s/README.md names what the manifests create."""

from __future__ import annotations

import re

import pytest

from evolution_pipeline.phases import REPO_ROOT
from tests.manifests.support import K8S, crdb_cluster, kind_install_commands, manifest_docs

README = K8S / "README.md"


@pytest.fixture(scope="module")
def install_commands() -> str:
    return kind_install_commands()


def position(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    assert match, f"`{pattern}` is not in make -n kind-install"
    return match.start()


def test_install_order(install_commands):
    steps = [
        r"kind create cluster .*--config k8s/kind/kind-config\.yaml",
        r"install cert-manager jetstack/cert-manager",
        r"install trust-manager jetstack/trust-manager",
        r"apply -f k8s/tls/00-ca\.yaml",
        r"wait --for=condition=Ready certificate/crdb-ca",
        r"apply -f k8s/tls/10-certificates\.yaml",
        r"get configmap cockroachdb-ca",
        r"install crdb-operator \S+/cockroachdb-parent/charts/operator",
        r"wait --for=condition=Established crd/crdbclusters\.crdb\.cockroachlabs\.com",
        r"apply -f k8s/crdb-rbac\.yaml",
        r"apply -f k8s/crdb-cluster\.yaml",
        r"apply -f k8s/services\.yaml -f k8s/rehearsal/services\.yaml",
        r"apply -f k8s/app/\s",
        r"apply -f k8s/pipeline/rbac\.yaml",
        r"install dagster dagster/dagster[^\n]*(\\\n[^\n]*)*?-f k8s/pipeline/dagster-values\.yaml",
    ]
    positions = [position(install_commands, s) for s in steps]
    assert positions == sorted(positions), "install steps out of order:\n" + "\n".join(
        f"{p:6d} {s}" for p, s in sorted(zip(positions, steps))
    )


def test_operator_gets_the_cluster_region(install_commands):
    code = crdb_cluster()["spec"]["regions"][0]["code"]
    assert f"--set cloudRegion={code}" in install_commands


def test_crdbcluster_is_applied_only_when_absent(install_commands):
    """Re-running kind-install must not reset spec.regions[0].nodes behind the pipeline's back."""
    line = next(l for l in install_commands.splitlines() if "apply -f k8s/crdb-cluster.yaml" in l)
    before = install_commands[: install_commands.index(line)].splitlines()[-3:]
    assert any("get crdbcluster cockroachdb" in l for l in before + [line])


def test_every_manifest_file_is_installed_or_documented_as_optional(install_commands):
    readme = README.read_text()
    for path in sorted({d.path for d in manifest_docs()}):
        rel = str(path.relative_to(REPO_ROOT))
        if "observability" in path.parts:
            continue  # applied by `make observability-deploy` (observability helper's checks)
        applied_dir = f"apply -f {path.parent.relative_to(REPO_ROOT)}/\n" in install_commands
        optional = rel in {
            "k8s/app/optional/hpa.yaml",
            "k8s/license-job.yaml",
            "k8s/loadgen-job.yaml",
            "k8s/license-secret.example.yaml",
            "k8s/kind/kind-config.yaml",
        }
        assert rel in install_commands or applied_dir or optional, f"{rel} is never applied by kind-install"
        assert str(path.relative_to(K8S)) in readme, f"k8s/README.md does not mention {rel}"


def test_readme_names_every_namespace_service_and_cluster():
    readme = README.read_text()
    for doc in manifest_docs():
        if "observability" in doc.path.parts:
            continue
        if doc.kind in {"Namespace", "Service", "CrdbCluster", "ServiceAccount", "Deployment", "Job"}:
            assert f"`{doc.name}`" in readme, f"k8s/README.md does not name {doc.kind} {doc.name}"
        if doc.namespace:
            assert f"`{doc.namespace}`" in readme, f"k8s/README.md does not name namespace {doc.namespace}"


def test_readme_make_targets_exist():
    targets = set(
        re.findall(
            r"^([a-zA-Z0-9_-]+):",
            "\n".join(
                p.read_text() for p in [REPO_ROOT / "Makefile", *sorted((REPO_ROOT / "mk").glob("*.mk"))]
            ),
            re.MULTILINE,
        )
    )
    used = set(re.findall(r"(?:`|^)make ([a-z][a-z0-9-]+)", README.read_text(), re.MULTILINE))
    assert used and used <= targets, f"unknown make targets in k8s/README.md: {sorted(used - targets)}"


def test_readme_paths_exist():
    for path in set(re.findall(r"\bk8s/[A-Za-z0-9_./-]+\.(?:yaml|json|md)\b", README.read_text())):
        assert (REPO_ROOT / path).exists(), path


def test_readme_explains_the_license_rule_and_prerequisites():
    text = " ".join(README.read_text().split())
    for phrase in [
        "5 concurrent open SQL transactions",
        "7 days",
        "cert-manager",
        "trust-manager",
        "cloudRegion",
        "no insecure variant",
        "demo credentials",
        "Preview",
    ]:
        assert phrase in text, phrase
