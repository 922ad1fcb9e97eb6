"""Every ```mermaid block of every Markdown file parses with the real Mermaid parser (npm `mermaid`, in Node)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .md_parse import REPO_ROOT, fenced_blocks, markdown_files, rel

SCRIPT = REPO_ROOT / "tests" / "docs" / "mermaid_parse.mjs"


def _need_node() -> str:
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "mermaid").is_dir():
        pytest.skip("needs Node and the npm packages of package-lock.json (bash scripts/setup.sh runs npm ci)")
    return node


def run_parser(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_need_node(), str(SCRIPT), *map(str, files)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )


def files_with_diagrams() -> list[Path]:
    return [f for f in markdown_files() if any(b.lang == "mermaid" for b in fenced_blocks(f.read_text("utf-8")))]


def test_every_mermaid_block_in_the_repository_parses():
    files = files_with_diagrams()
    assert files, "no Markdown file with a mermaid block found: the docs lost their diagrams"
    result = run_parser(*files)
    assert result.returncode == 0, f"Mermaid rejected a diagram:\n{result.stderr}{result.stdout}"
    expected = sum(1 for f in files for b in fenced_blocks(f.read_text("utf-8")) if b.lang == "mermaid")
    assert f"{expected} mermaid block(s) parsed, 0 failure(s)" in result.stdout, result.stdout


def test_the_docs_that_must_have_diagrams_have_them():
    with_diagrams = {rel(f) for f in files_with_diagrams()}
    required = {"README.md", "diagrams/phase0-single-node.md", "diagrams/phase1-two-nodes.md",
                "diagrams/phase2-three-nodes.md", "diagrams/phase3-multicluster.md",
                "diagrams/evolution-timeline.md", "diagrams/three-zones.md"}
    assert required <= with_diagrams, f"missing diagrams in: {sorted(required - with_diagrams)}"


def test_a_broken_diagram_is_rejected_with_file_and_line(tmp_path):
    good = tmp_path / "good.md"
    good.write_text("# ok\n\n```mermaid\nflowchart LR\n  a[one] --> b[two]\n```\n")
    bad = tmp_path / "bad.md"
    bad.write_text("# broken\n\ntext\n\n```mermaid\nflowchart LR\n  a[unclosed --> b\n```\n")
    result = run_parser(good, bad)
    assert result.returncode == 1
    assert f"{bad}:6: mermaid parse error" in result.stderr
    assert str(good) not in result.stderr
    assert "1 mermaid block(s) parsed, 1 failure(s)" in result.stdout


def test_an_unknown_diagram_type_is_rejected(tmp_path):
    bad = tmp_path / "unknown.md"
    bad.write_text("```mermaid\nnotadiagram\n  a --> b\n```\n")
    result = run_parser(bad)
    assert result.returncode == 1, result.stdout
    assert f"{bad}:2:" in result.stderr


def test_the_parser_handles_the_diagram_types_the_docs_use(tmp_path):
    doc = tmp_path / "types.md"
    doc.write_text(
        "```mermaid\ntimeline\n  title t\n  section phase A\n    one : two\n```\n\n"
        "```mermaid\nsequenceDiagram\n  A->>B: hello\n```\n"
    )
    result = run_parser(doc)
    assert result.returncode == 0, result.stderr
    assert "ok (timeline)" in result.stdout and "ok (sequence)" in result.stdout
