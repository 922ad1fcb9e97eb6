"""Shared helpers for the manifest checks: load every YAML document under k8s/, find objects, schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from evolution_pipeline.phases import REPO_ROOT

K8S = REPO_ROOT / "k8s"
SCHEMAS = K8S / "schemas"
KUBERNETES_VERSION = "1.30"


@dataclass(frozen=True)
class Doc:
    path: Path
    index: int
    body: dict

    @property
    def kind(self) -> str:
        return self.body.get("kind", "")

    @property
    def api_version(self) -> str:
        return self.body.get("apiVersion", "")

    @property
    def name(self) -> str:
        return (self.body.get("metadata") or {}).get("name", "")

    @property
    def namespace(self) -> str:
        return (self.body.get("metadata") or {}).get("namespace", "")

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}#{self.index} {self.kind} {self.namespace}/{self.name}"


def yaml_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


@cache
def _load(path: Path) -> tuple[Doc, ...]:
    return tuple(Doc(path, i, d) for i, d in enumerate(yaml.safe_load_all(path.read_text())) if d is not None)


def docs(path: Path | str | None = None) -> list[Doc]:
    if path is not None:
        return list(_load(K8S / path if not Path(path).is_absolute() else Path(path)))
    return [d for p in yaml_files() for d in _load(p)]


def manifest_docs() -> list[Doc]:
    """Kubernetes objects only: not Helm values (no apiVersion/kind at the top)."""
    return [d for d in docs() if "apiVersion" in d.body and "kind" in d.body]


def find(kind: str, name: str, namespace: str | None = None, path: str | None = None) -> dict:
    found = [
        d.body
        for d in (docs(path) if path else manifest_docs())
        if d.kind == kind and d.name == name and (namespace is None or d.namespace == namespace)
    ]
    assert len(found) == 1, f"expected one {kind} {namespace or '*'}/{name}, found {len(found)}"
    return found[0]


def find_all(kind: str, path: str | None = None) -> list[dict]:
    return [d.body for d in (docs(path) if path else manifest_docs()) if d.kind == kind]


def crdb_cluster() -> dict:
    return find("CrdbCluster", "cockroachdb", "crdb", path="crdb-cluster.yaml")


@cache
def schema(file: str) -> dict:
    return json.loads((SCHEMAS / file).read_text())


def validator(file: str, definition: str | None = None) -> jsonschema.Draft202012Validator:
    root = schema(file)
    if definition is None:
        return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
    sub = {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(sub, format_checker=jsonschema.FormatChecker())


def errors(v: jsonschema.Draft202012Validator, body: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in v.iter_errors(body)]


# Custom resources, each checked against a schema the project keeps in k8s/schemas/.
CUSTOM_KINDS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("crdb.cockroachlabs.com/v1beta1", "CrdbCluster"): ("crdbcluster-v1beta1.schema.json", None),
    ("cert-manager.io/v1", "Certificate"): ("cert-manager-v1.schema.json", "Certificate"),
    ("cert-manager.io/v1", "Issuer"): ("cert-manager-v1.schema.json", "Issuer"),
    ("cert-manager.io/v1", "ClusterIssuer"): ("cert-manager-v1.schema.json", "ClusterIssuer"),
    ("trust.cert-manager.io/v1alpha1", "Bundle"): ("trust-manager-bundle-v1alpha1.schema.json", "Bundle"),
    ("kind.x-k8s.io/v1alpha4", "Cluster"): ("kind-cluster-v1alpha4.schema.json", None),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("prometheus-operator-v1.schema.json", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("prometheus-operator-v1.schema.json", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("prometheus-operator-v1.schema.json", "PrometheusRule"),
}


def custom_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    file, definition = CUSTOM_KINDS[(api_version, kind)]
    return validator(file, definition)


def pod_template_labels() -> dict[str, str]:
    return crdb_cluster()["spec"]["template"]["spec"]["podTemplate"]["metadata"]["labels"]


def kind_install_commands() -> str:
    """`make kind-install` as `make -n` prints it: the commands without running them (recursive $(MAKE) lines
    are followed, also with -n). Skips where make is not installed."""
    import pytest

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "--no-print-directory", "kind-install"], check=False, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout
