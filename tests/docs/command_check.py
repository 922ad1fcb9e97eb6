"""Commands the docs tell a reader to run must exist: make targets, scripts, files, Python modules.

Shell blocks (```bash, ```sh, ```shell, ```console) and inline `make ...` spans are read. Each simple
command is judged by what can be judged offline: `make T` needs target T in Makefile or mk/*.mk (asked of
make itself), `bash F` / `./F` / any argument that starts with a top-level folder of the repository needs
that path, `python -m M` needs module M importable. Other programs (kubectl, helm, curl) are the reader's.
"""

from __future__ import annotations

import glob
import importlib.util
import re
import shlex
import subprocess
from functools import lru_cache
from pathlib import Path

from .md_parse import fenced_blocks, inline_code, prose_lines

SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
ENV_ASSIGN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PLACEHOLDER_RE = re.compile(r"[<>$*{}]")


@lru_cache(maxsize=8)
def make_targets(root: Path) -> frozenset[str]:
    """Targets make itself knows in `root` (Makefile plus its includes), without running any recipe."""
    out = subprocess.run(
        ["make", "-pRrq", "-C", str(root), ":"], capture_output=True, text=True, timeout=60,
    ).stdout
    targets, in_files = set(), False
    for line in out.splitlines():
        if line.startswith("# Files"):
            in_files = True
        if not in_files or line.startswith(("#", "\t", " ")) or ":" not in line:
            continue
        head, _, rest = line.partition(":")
        if rest.startswith("=") or head.startswith((".", "/")) or "%" in head or "$" in head:
            continue
        targets.update(t for t in head.split() if t)
    return frozenset(targets)


def shell_commands(text: str) -> list[tuple[int, str]]:
    """(line, command) for every simple command in shell blocks and inline `make ...` spans."""
    found: list[tuple[int, str]] = []
    for block in fenced_blocks(text):
        if block.lang not in SHELL_LANGS:
            continue
        joined, start = "", None
        for offset, raw in enumerate(block.text.splitlines()):
            line = raw.strip()
            if block.lang == "console" and not joined:
                if not line.startswith("$ "):
                    continue  # output lines
                line = line[2:]
            line = line.removeprefix("$ ")
            if not joined:
                start = block.line + offset
            if line.endswith("\\"):
                joined += line[:-1] + " "
                continue
            joined += line
            found.extend((start, c) for c in split_simple(joined))
            joined = ""
        if joined:
            found.extend((start, c) for c in split_simple(joined))
    for n, line in prose_lines(text):
        for code in inline_code(line):
            if code.startswith("make ") or code == "make":
                found.append((n, code))
    return found


def split_simple(line: str) -> list[str]:
    line = " ".join(line.split(" #", 1)[0].split())
    if not line or line.startswith("#"):
        return []
    parts = re.split(r"\s*(?:&&|\|\||;|\|)\s*", line)
    return [p.strip().lstrip("( ").rstrip(") &") for p in parts if p.strip()]


def command_problems(command: str, root: Path) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [f"cannot parse {command!r}: {exc}"]
    while words and ENV_ASSIGN_RE.match(words[0]):
        words.pop(0)
    if words and words[0] in {"sudo", "exec", "time", "env"}:
        words.pop(0)
    if not words:
        return []
    prog, args = words[0], words[1:]
    problems: list[str] = []
    if prog == "make":
        known = make_targets(root)
        skip_next = False
        for a in args:
            if skip_next:
                skip_next = False
                continue
            if a in {"-C", "-f", "-j", "-o", "-W"}:
                skip_next = True
                continue
            if a.startswith("-") or "=" in a:
                continue
            if a not in known:
                problems.append(f"`make {a}`: no such target in Makefile or mk/*.mk")
    if prog in {"bash", "sh"} and args and not args[0].startswith("-"):
        problems += path_problem(args[0], root)
    if prog.startswith("./") or "/" in prog:
        problems += path_problem(prog, root, may_be_built=prog.startswith(".venv/"))
    if prog.endswith(("python", "python3")) and len(args) >= 2 and args[0] == "-m":
        module = args[1]
        if importlib.util.find_spec(module.split(".")[0]) is None:
            problems.append(f"`python -m {module}`: module {module!r} is not importable")
        elif module.split(".")[0] in local_packages(root) and not module_exists(module, root):
            problems.append(f"`python -m {module}`: no module {module} in the repository")
    top = top_level_entries(root)
    for a in args:
        candidate = a.split("=", 1)[1] if a.startswith("--") and "=" in a else a
        first = candidate.removeprefix("./").split("/", 1)[0]
        if "/" in candidate and first in top and not PLACEHOLDER_RE.search(candidate):
            problems += path_problem(candidate, root)
    return list(dict.fromkeys(problems))  # one report per problem, however many rules saw it


def path_problem(path: str, root: Path, may_be_built: bool = False) -> list[str]:
    if PLACEHOLDER_RE.search(path) and not glob.has_magic(path):
        return []
    if may_be_built:
        return []  # .venv/bin/* appears after `make dev` / `make test`
    p = root / path.removeprefix("./")
    if glob.has_magic(path) and glob.glob(str(p)):
        return []
    return [] if p.exists() else [f"{path}: no such file or folder in the repository"]


def top_level_entries(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if not p.name.startswith(".") and p.name != "node_modules"}


def local_packages(root: Path) -> set[str]:
    return {p.parent.name for p in root.glob("*/__init__.py")}


def module_exists(module: str, root: Path) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or (base / "__main__.py").exists() or (base / "__init__.py").exists()
