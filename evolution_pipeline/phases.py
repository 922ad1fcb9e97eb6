"""The phases of the evolution this code location runs: the loaded evolution file, nothing else.

EVOLUTION_PLAN=<file> picks it (default evolutions/demo.yaml, the 1 -> 2 -> 3 demo); the loader and the
validator sit at the bottom (evolution_pipeline/evolution/). Assets, checks, the evolve job, the plan and the
docs follow PHASES; a wrong file raises EvolutionError here, at import, so nothing runs: `plan` exits with it
and the Dagster code location fails to load with it.
"""

from __future__ import annotations

from .evolution.load import load_evolution
from .evolution.model import (  # noqa: F401  (the names every importer has used from here)
    DEFAULT_SYSTEM_REPLICAS,
    REPO_ROOT,
    SQL_DIR,
    Evolution,
    Phase,
    Replication,
    Survives,
    needed_non_voters,
    needed_voters,
)
from .evolution.roles import APP_PATHS, initial_password_env

EVOLUTION: Evolution = load_evolution()
PHASES: tuple[Phase, ...] = EVOLUTION.phases

# The application's SQL login users (two rotation users per path) and the environment variable (or Kubernetes
# Secret key) holding each one's initial password: APP_WRITER_PASSWORD for app_rw_01 (writer path, group
# app_rw), APP_READER_PASSWORD for app_ro_01 (reader path, group app_ro, SELECT only). None: a standby created
# without a password; rotate_credentials gives it its first one.
SQL_USERS: dict[str, str | None] = {user: initial_password_env(user) for path in APP_PATHS for user in path.users}
APP_DATABASE = "app"

PHASES_BY_NAME: dict[str, Phase] = {p.name: p for p in PHASES}
# The grown cluster: the drills run after it, the report's verdict is about it.
LAST_PHASE: Phase = PHASES[-1]


def get_phase(name: str) -> Phase:
    try:
        return PHASES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown phase {name!r}; known phases: {', '.join(PHASES_BY_NAME)}") from None


def previous_phase(phase: Phase) -> Phase | None:
    return PHASES[phase.index - 1] if phase.index > 0 else None
