"""A CockroachDB cluster of local `cockroach` processes: the backend for a laptop, a plain CI runner and the
local nightly rehearsal (see control.py for the data folder's layout).

    binary.py     finding the official binary, or the one message on getting it
    control.py    LocalClusterControl: certificates, nodes, init, readiness, Prometheus targets, reset
    processes.py  pids, /proc, ports, atomic writes
    settings.py   environment variables -> fields -> LocalClusterConfig (shared by the resource and the CLI)
    backend.py    LocalClusterMethods (what the backend does with its fields) and LocalClusterBackend, the
                  same fields without Dagster (python -m evolution_pipeline plan)
    resource.py   LocalClusterResource (Dagster): the fields Dagster configures, LocalClusterMethods' methods
    __main__.py   the CLI behind make dev, make local-status and make local-stop

Importing this package never imports Dagster: LocalClusterResource is loaded on first use (PEP 562 module
__getattr__), because the CLI runs several times per `make dev` and Dagster's import costs over a second of
CPU each time (tests/local/test_cli_imports.py keeps it that way).
"""

from __future__ import annotations

from .binary import GET_BINARY_MESSAGE, MISSING_BINARY_MESSAGE, find_cockroach, require_cockroach
from .control import LocalClusterConfig, LocalClusterControl, LocalNode, parse_node_status_csv
from .settings import (
    LIVE_DEFAULTS,
    REHEARSAL_DEFAULTS,
    config_from_env,
    local_cluster_config,
    settings_from_env,
)

# Names that need Dagster, and the submodule that defines each.
_LAZY = {"LocalClusterResource": ".resource"}

__all__ = [
    "GET_BINARY_MESSAGE",
    "LIVE_DEFAULTS",
    "MISSING_BINARY_MESSAGE",
    "REHEARSAL_DEFAULTS",
    "LocalClusterConfig",
    "LocalClusterControl",
    "LocalClusterResource",
    "LocalNode",
    "config_from_env",
    "find_cockroach",
    "local_cluster_config",
    "parse_node_status_csv",
    "require_cockroach",
    "settings_from_env",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
