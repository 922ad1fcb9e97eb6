"""Finding the official `cockroach` binary, or saying in one message how to get it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from evolution_pipeline.resources.cluster import (
    ClusterControlError,
)

MISSING_BINARY_MESSAGE = (
    "No CockroachDB binary found (looked at $COCKROACH_BIN, then `cockroach` on PATH). "
    "Get the official one: open https://www.cockroachlabs.com/docs/releases/, download the Linux tarball "
    "(cockroach-<version>.linux-amd64.tgz), extract it, then put `cockroach` on your PATH or set "
    "COCKROACH_BIN=/path/to/cockroach, and run this again."
)


def find_cockroach(explicit: str = "", env: dict | None = None) -> str | None:
    """The cockroach binary: an explicit path, else $COCKROACH_BIN, else PATH. None when there is none."""
    env = os.environ if env is None else env
    candidate = explicit or env.get("COCKROACH_BIN", "")
    if candidate:
        path = Path(candidate).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which("cockroach", path=env.get("PATH"))


def require_cockroach(explicit: str = "", env: dict | None = None) -> str:
    found = find_cockroach(explicit, env)
    if found:
        return found
    candidate = explicit or (os.environ if env is None else env).get("COCKROACH_BIN", "")
    prefix = f"{candidate!r} is not an executable file. " if candidate else ""
    raise ClusterControlError(prefix + MISSING_BINARY_MESSAGE)
