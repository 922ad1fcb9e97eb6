"""The role model now lives at the bottom, next to the evolution model that names it
(evolution_pipeline/evolution/roles.py); this module keeps the old import path working."""

from .evolution.roles import (  # noqa: F401
    APP_PATHS,
    GROUPS,
    PATHS_BY_NAME,
    READER,
    WRITER,
    AppPath,
    initial_password_env,
    path_of_user,
)
