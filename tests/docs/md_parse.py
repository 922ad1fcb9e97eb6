"""Reading Markdown the way GitHub renders it, just enough for the docs checks.

Fenced blocks, inline code, links and heading anchors (GitHub's slug rule). No Markdown library: the few
rules needed are short, and a dependency would have to match GitHub's renderer anyway.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Folders that hold other people's Markdown (packages, caches), never ours.
IGNORED_DIRS = {".git", ".venv", "node_modules", ".pytest_cache", "build", ".data", "test-artifacts"}

FENCE_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the block's first body line


def markdown_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every Markdown file of the repository (tracked or new, not ignored)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "--", "*.md"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.split()
        files = [root / f for f in out]
    except (OSError, subprocess.CalledProcessError):
        files = list(root.rglob("*.md"))
    return sorted(f for f in files if f.is_file() and not IGNORED_DIRS.intersection(f.relative_to(root).parts))


def fenced_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m["fence"], (m["info"].split() or [""])[0].lower()
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j])
            j += 1
        blocks.append(Block(lang=lang, text="\n".join(body), line=i + 2))
        i = j + 1
    return blocks


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    out, fence = [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE_RE.match(line)
        if fence is None and m:
            fence = m["fence"]
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            continue
        out.append((n, line))
    return out


INLINE_CODE_RE = re.compile(r"(`+)(.+?)\1")


def inline_code(line: str) -> list[str]:
    return [m.group(2).strip() for m in INLINE_CODE_RE.finditer(line)]


def strip_inline_code(line: str) -> str:
    return INLINE_CODE_RE.sub(" ", line)


LINK_RE = re.compile(r"!?\[(?P<text>[^\]]*)\]\(\s*(?P<target><[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF_RE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(?P<target>\S+)")
HTML_HREF_RE = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)=["'](?P<target>[^"']+)["']""", re.I)


@dataclass(frozen=True)
class Link:
    target: str
    line: int


def links(text: str) -> list[Link]:
    found = []
    for n, line in prose_lines(text):
        plain = strip_inline_code(line)
        for m in LINK_RE.finditer(plain):
            found.append(Link(m["target"].strip("<>"), n))
        for m in REF_DEF_RE.finditer(plain):
            found.append(Link(m["target"].strip("<>"), n))
        for m in HTML_HREF_RE.finditer(plain):
            found.append(Link(m["target"], n))
    return found


HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
EXPLICIT_ANCHOR_RE = re.compile(r"""<a\s+(?:id|name)=["'](?P<id>[^"']+)["']""", re.I)


def slugify(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (except - and _), spaces to dashes."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # links keep their text
    title = re.sub(r"<[^>]+>", "", title)  # inline HTML tags vanish
    title = title.strip().lower()
    title = re.sub(r"[^\w\- ]", "", title)
    return title.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for _, line in prose_lines(text):
        m = HEADING_RE.match(line)
        if m:
            slug = slugify(m["title"])
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            result.add(slug if count == 0 else f"{slug}-{count}")
        for a in EXPLICIT_ANCHOR_RE.finditer(line):
            result.add(a["id"])
    return result


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
