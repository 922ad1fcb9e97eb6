"""One CockroachDB version: versions.toml [cockroach] pins it, everything else follows.

The manifests (CrdbCluster, license and load-generator Jobs, anything added later), the Makefiles, the
workflows and the docs may only name the pinned image; the local binary pin reads versions.toml itself.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from evolution_pipeline.phases import REPO_ROOT
from tests.manifests.support import crdb_cluster

# cockroachdb/cockroach:<tag> and the unstable variants people paste (cockroachdb/cockroach-unstable:...).
IMAGE = re.compile(r"cockroachdb/cockroach(?:-unstable)?:([A-Za-z0-9_.-]+)")
SKIP_DIRS = {".git", ".venv", "node_modules", ".data", "dagster_home", "__pycache__"}
SUFFIXES = {".yaml", ".yml", ".md", ".mk", ".json", ".toml", ".sh", ".py", ".j2", ""}


def pin() -> dict:
    return tomllib.loads((REPO_ROOT / "versions.toml").read_text())["cockroach"]


def files() -> list[Path]:
    found = []
    for path in REPO_ROOT.rglob("*"):
        parts = set(path.relative_to(REPO_ROOT).parts)
        if parts & SKIP_DIRS or not path.is_file() or path.suffix not in SUFFIXES:
            continue
        if path.name == "versions.toml" or path.parts[-2:] == ("manifests", "test_version_pin.py"):
            continue
        found.append(path)
    return found


def references() -> dict[str, list[str]]:
    """file -> every CockroachDB image it names."""
    out = {}
    for path in files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        images = [m.group(0) for m in IMAGE.finditer(text)]
        if images:
            out[str(path.relative_to(REPO_ROOT))] = images
    return out


def test_the_pin_is_one_version():
    versions = pin()
    assert versions["image"] == f"cockroachdb/cockroach:{versions['version']}"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", versions["version"])


def test_every_image_reference_is_the_pinned_one():
    wanted = pin()["image"]
    refs = references()
    for manifest in ("k8s/crdb-cluster.yaml", "k8s/loadgen-job.yaml", "k8s/license-job.yaml"):
        assert manifest in refs, f"{manifest} names no CockroachDB image any more: update this check"
    stray = {f: sorted(set(i for i in images if i != wanted)) for f, images in refs.items()}
    stray = {f: i for f, i in stray.items() if i}
    assert not stray, f"only {wanted} (versions.toml) may be named; found {stray}"
    assert crdb_cluster()["spec"]["template"]["spec"]["image"] == wanted


def test_the_scan_finds_a_stray_version(tmp_path, monkeypatch):
    """The check can fail: a second version in any scanned file is reported."""
    import tests.manifests.test_version_pin as me

    (tmp_path / "versions.toml").write_text((REPO_ROOT / "versions.toml").read_text())
    (tmp_path / "docs.md").write_text("run cockroachdb/cockroach:v1.2.3 here\n")
    monkeypatch.setattr(me, "REPO_ROOT", tmp_path)
    assert me.references() == {"docs.md": ["cockroachdb/cockroach:v1.2.3"]}
