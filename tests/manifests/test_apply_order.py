"""`kubectl apply -f <dir>` works on a fresh cluster: no object comes before the Namespace it lives in.

kubectl reads a directory in lexical file order: k8s.io/cli-runtime pkg/resource/visitor.go
ExpandPathsToFileVisitors walks it with filepath.Walk (which visits entries in lexical order), skips
subdirectories unless -R is given, and keeps only .json/.yaml/.yml files (FileExtensions); the objects of
each file are applied in document order. So a directory's Namespace must sort first (00-namespace.yaml).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.manifests.support import K8S

EXTENSIONS = {".json", ".yaml", ".yml"}
# The seed's own acceptance commands: these directories must apply on a cluster that has nothing yet.
SELF_CONTAINED = ["app", "observability"]
# Other directories are applied after k8s/00-namespaces.yaml (k8s/README.md, mk/kind.mk), after
# k8s/observability/ (kube-prometheus-stack/ extras, grafana/README.md) or into namespaces Helm creates
# (cert-manager: `helm install --create-namespace`).
PREREQUISITE_FILES = ["00-namespaces.yaml", "app/00-namespace.yaml", "observability/00-namespace.yaml"]
HELM_NAMESPACES = {"cert-manager"}


def kubectl_order(directory: Path) -> list[Path]:
    """The files `kubectl apply -f directory` reads, in the order it reads them (no -R)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in EXTENSIONS)


def objects(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and "kind" in d]


def order_problems(directory: Path, existing: set[str]) -> list[str]:
    """Replay the apply: every namespaced object needs its Namespace to exist already."""
    created, problems = set(existing), []
    for path in kubectl_order(directory):
        for obj in objects(path):
            meta = obj.get("metadata") or {}
            if obj["kind"] == "Namespace":
                created.add(meta["name"])
            elif meta.get("namespace") and meta["namespace"] not in created:
                problems.append(
                    f"{path.name}: {obj['kind']} {meta['namespace']}/{meta.get('name')} comes before "
                    f"Namespace {meta['namespace']} exists"
                )
    return problems


def manifest_dirs() -> list[Path]:
    dirs = [K8S, *(p for p in K8S.rglob("*") if p.is_dir())]
    applied = (lambda d: [f for f in kubectl_order(d) if not f.name.endswith("values.yaml")])
    return [d for d in dirs if any(objects(f) for f in applied(d))]


def prerequisite_namespaces() -> set[str]:
    made = [o for f in PREREQUISITE_FILES for o in objects(K8S / f)]
    return {o["metadata"]["name"] for o in made if o["kind"] == "Namespace"} | HELM_NAMESPACES


@pytest.mark.parametrize("name", SELF_CONTAINED)
def test_seed_directories_apply_on_a_fresh_cluster(name):
    assert order_problems(K8S / name, existing=set()) == []


@pytest.mark.parametrize("directory", manifest_dirs(), ids=lambda d: str(d.relative_to(K8S.parent)))
def test_every_directory_applies_after_the_documented_prerequisites(directory):
    assert order_problems(directory, existing=prerequisite_namespaces()) == []


def test_the_namespaces_file_sorts_first_at_the_top():
    assert kubectl_order(K8S)[0].name == "00-namespaces.yaml"


def test_the_replay_catches_a_namespace_that_sorts_last(tmp_path):
    (tmp_path / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: demo}\n"
    )
    (tmp_path / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "README.md").write_text("not read")
    assert [p.name for p in kubectl_order(tmp_path)] == ["configmap.yaml", "namespace.yaml"]
    assert order_problems(tmp_path, set()) == [
        "configmap.yaml: ConfigMap demo/c comes before Namespace demo exists"
    ]
    (tmp_path / "namespace.yaml").rename(tmp_path / "00-namespace.yaml")
    assert order_problems(tmp_path, set()) == []
