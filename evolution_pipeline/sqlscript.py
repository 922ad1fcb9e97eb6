"""Reading the phase SQL files: split into statements, named parameters filled client-side.

Files use psycopg's named placeholders (`%(name)s`) for anything secret or environment-specific; the values
come from the environment (or Kubernetes Secrets mounted as env) at run time, never from the files.
"""

from __future__ import annotations

import re
from pathlib import Path

_PARAM = re.compile(r"%\((\w+)\)s")


def strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def split_statements(text: str) -> list[str]:
    """Split a SQL file on semicolons that end a line.

    The project's SQL files are plain DDL/DML with no semicolons inside literals or bodies (a test checks
    that every file splits into statements that each parse on PostgreSQL), so this simple rule is exact.
    """
    body = strip_comments(text)
    parts = re.split(r";\s*(?:\n|$)", body)
    return [p.strip() for p in parts if p.strip()]


def statement_params(statement: str) -> set[str]:
    return set(_PARAM.findall(statement))


def load_script(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} does not exist; the phase table names it, so restore it")
    return split_statements(path.read_text())
