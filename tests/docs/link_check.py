"""Relative links in Markdown: the file (or folder) must exist, and a #fragment must be a heading there."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from .md_parse import anchors, links

EXTERNAL_RE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def broken_links(md_file: Path, root: Path) -> list[str]:
    """Human-readable problems, one per broken link ('FILE:LINE: why')."""
    text = md_file.read_text(encoding="utf-8")
    problems = []
    for link in links(text):
        target = link.target
        if not target or EXTERNAL_RE.match(target) or target.startswith("//"):
            continue
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        where = f"{md_file.relative_to(root) if md_file.is_relative_to(root) else md_file}:{link.line}"
        if path_part:
            dest = (root / path_part.lstrip("/")) if path_part.startswith("/") else (md_file.parent / path_part)
            dest = dest.resolve()
            if not dest.exists():
                problems.append(f"{where}: link to {target!r}: {path_part} does not exist")
                continue
            if not dest.is_relative_to(root.resolve()):
                problems.append(f"{where}: link to {target!r} leaves the repository")
                continue
        else:
            dest = md_file
        if fragment and dest.is_file() and dest.suffix.lower() == ".md":
            if unquote(fragment).lower() not in {a.lower() for a in anchors(dest.read_text(encoding="utf-8"))}:
                problems.append(f"{where}: link to {target!r}: no heading #{fragment} in {dest.name}")
    return problems
