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


# Each parser run starts Node and loads Mermaid with jsdom (~3 CPU-s): the tests share two runs, one over files
# that must all parse (exit 0), one over files with broken blocks (exit 1), each test reading its own lines.
TYPES_DOC = (
    "```mermaid\ntimeline\n  title t\n  section phase A\n    one : two\n```\n\n"
    "```mermaid\nsequenceDiagram\n  A->>B: hello\n```\n"
)


def blocks_in(files: list[Path]) -> int:
    return sum(1 for f in files for b in fenced_blocks(f.read_text("utf-8")) if b.lang == "mermaid")


@pytest.fixture(scope="module")
def all_good(tmp_path_factory):
    """The repository's diagrams, plus a file of the diagram types the docs use."""
    types = tmp_path_factory.mktemp("mermaid-good") / "types.md"
    types.write_text(TYPES_DOC)
    files = files_with_diagrams()
    return files, types, run_parser(*files, types)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A good file, a broken block and an unknown diagram type, in one run."""
    folder = tmp_path_factory.mktemp("mermaid-broken")
    good, bad, unknown = folder / "good.md", folder / "bad.md", folder / "unknown.md"
    good.write_text("# ok\n\n```mermaid\nflowchart LR\n  a[one] --> b[two]\n```\n")
    bad.write_text("# broken\n\ntext\n\n```mermaid\nflowchart LR\n  a[unclosed --> b\n```\n")
    unknown.write_text("```mermaid\nnotadiagram\n  a --> b\n```\n")
    return good, bad, unknown, run_parser(good, bad, unknown)


def test_every_mermaid_block_in_the_repository_parses(all_good):
    files, types, result = all_good
    assert files, "no Markdown file with a mermaid block found: the docs lost their diagrams"
    assert result.returncode == 0, f"Mermaid rejected a diagram:\n{result.stderr}{result.stdout}"
    expected = blocks_in(files) + blocks_in([types])
    assert f"{expected} mermaid block(s) parsed, 0 failure(s)" in result.stdout, result.stdout
    for f in files:
        assert f"{f}:" in result.stdout, f"{f} was not parsed"


def test_the_docs_that_must_have_diagrams_have_them():
    with_diagrams = {rel(f) for f in files_with_diagrams()}
    required = {"README.md", "diagrams/phase0-single-node.md", "diagrams/phase1-two-nodes.md",
                "diagrams/phase2-three-nodes.md", "diagrams/phase3-multicluster.md",
                "diagrams/evolution-timeline.md", "diagrams/three-zones.md"}
    assert required <= with_diagrams, f"missing diagrams in: {sorted(required - with_diagrams)}"


def test_a_broken_diagram_is_rejected_with_file_and_line(broken):
    good, bad, _unknown, result = broken
    assert result.returncode == 1
    assert f"{bad}:6: mermaid parse error" in result.stderr
    assert str(good) not in result.stderr and f"{good}:4: ok (flowchart" in result.stdout
    assert "1 mermaid block(s) parsed, 2 failure(s)" in result.stdout  # good parsed; bad and unknown failed


def test_an_unknown_diagram_type_is_rejected(broken):
    _good, _bad, unknown, result = broken
    assert result.returncode == 1, result.stdout
    assert f"{unknown}:2:" in result.stderr
    assert f"{unknown}:2: ok" not in result.stdout


def test_the_parser_handles_the_diagram_types_the_docs_use(all_good):
    _files, types, result = all_good
    assert result.returncode == 0, result.stderr
    assert f"{types}:2: ok (timeline)" in result.stdout and f"{types}:9: ok (sequence)" in result.stdout
