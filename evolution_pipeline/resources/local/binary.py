"""Finding the official `cockroach` binary, or saying in one message how to get it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from evolution_pipeline.phases import REPO_ROOT
from evolution_pipeline.resources.cluster_control import (
    ClusterControlError,
)

# What is missing and how to get it, for any caller; each caller adds what to do next where it is shown.
GET_BINARY_MESSAGE = (
    "No CockroachDB binary found (looked at $COCKROACH_BIN, `cockroach` on PATH, then .data/bin/). "
    "Fetch the pinned official release with `make tools` (scripts/fetch_tools.py: verified against its "
    "published SHA-256), or download it from https://www.cockroachlabs.com/docs/releases/ and put "
    "`cockroach` on your PATH or set COCKROACH_BIN=/path/to/cockroach."
)
# The pipeline's version (a failed op in the Dagster UI).
MISSING_BINARY_MESSAGE = (
    GET_BINARY_MESSAGE + " Then stop make dev (Ctrl-C), start it again and re-execute this run from the Dagster UI."
)


def tools_bin_dir(env: dict | None = None) -> Path:
    """Where scripts/fetch_tools.py installs (CRDB_TOOLS_BIN_DIR, default <repo>/.data/bin)."""
    env = os.environ if env is None else env
    return Path(env.get("CRDB_TOOLS_BIN_DIR") or REPO_ROOT / ".data" / "bin")


def find_cockroach(explicit: str = "", env: dict | None = None) -> str | None:
    """The cockroach binary: an explicit path, else $COCKROACH_BIN, else PATH, else the copy
    scripts/fetch_tools.py installed. None when there is none."""
    env = os.environ if env is None else env
    candidate = explicit or env.get("COCKROACH_BIN", "")
    if candidate:
        path = Path(candidate).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    fetched = tools_bin_dir(env) / "cockroach"
    if found := shutil.which("cockroach", path=env.get("PATH")):
        return found
    return str(fetched) if fetched.is_file() and os.access(fetched, os.X_OK) else None


def require_cockroach(explicit: str = "", env: dict | None = None) -> str:
    found = find_cockroach(explicit, env)
    if found:
        return found
    candidate = explicit or (os.environ if env is None else env).get("COCKROACH_BIN", "")
    prefix = f"{candidate!r} is not an executable file. " if candidate else ""
    raise ClusterControlError(prefix + MISSING_BINARY_MESSAGE)
