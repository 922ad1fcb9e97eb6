"""Every relative link in every Markdown file resolves: the file or folder exists, and #anchors exist."""

from __future__ import annotations

import pytest

from .link_check import broken_links
from .md_parse import REPO_ROOT, anchors, markdown_files, rel, slugify


@pytest.mark.parametrize("md_file", markdown_files(), ids=rel)
def test_relative_links_resolve(md_file):
    assert broken_links(md_file, REPO_ROOT) == []


def test_the_docs_link_to_the_other_readmes_and_each_other():
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    for target in ("demo/DEMO.md", "context.md", "sample_app/README.md", "grafana/README.md", "k8s/README.md",
                   "diagrams/phase0-single-node.md", "diagrams/phase1-two-nodes.md",
                   "diagrams/phase2-three-nodes.md", "diagrams/phase3-multicluster.md",
                   "diagrams/evolution-timeline.md"):
        assert f"]({target}" in readme, f"README.md does not link to {target}"


def test_broken_file_and_anchor_links_are_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading: yes!\n\n## Twice\n\n## Twice\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n"
        "[fine](other.md) [anchor](other.md#a-code-heading-yes) [dup](other.md#twice-1)\n"
        "[missing file](nope.md)\n"
        "[missing anchor](other.md#not-there)\n"
        "[self](#doc) [bad self](#nowhere)\n"
        "`[not a link](inline-code.md)` [web](https://example.com/x)\n"
        "```\n[in a code block](ignored.md)\n```\n"
    )
    problems = broken_links(doc, tmp_path)
    assert len(problems) == 3, problems
    assert any("nope.md does not exist" in p and ":4:" in p for p in problems)
    assert any("#not-there" in p for p in problems)
    assert any("#nowhere" in p for p in problems)


def test_github_heading_slugs():
    assert slugify("Kubernetes (kind) quick start") == "kubernetes-kind-quick-start"
    assert slugify("1. Baseline: one node, and why it is fragile (00:00-02:00)") == \
        "1-baseline-one-node-and-why-it-is-fragile-0000-0200"
    assert slugify("`make dev` and [links](x.md)") == "make-dev-and-links"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
