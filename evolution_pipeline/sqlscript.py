"""Reading the phase SQL files: comments stripped, split into statements.

The files hold no secrets and no environment-specific values: passwords are set by the SQL resource
(ensure_login_user) from the environment, never written in a file.
"""

from __future__ import annotations

import re
from pathlib import Path


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


def load_script(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} does not exist; the phase table names it, so restore it")
    return split_statements(path.read_text())
