"""A CockroachDB cluster of local `cockroach` processes: the backend for a laptop, a plain CI runner and the
local nightly rehearsal (see control.py for the data folder's layout).

    binary.py     finding the official binary, or the one message on getting it
    control.py    LocalClusterControl: certificates, nodes, init, readiness, Prometheus targets, reset
    processes.py  pids, /proc, ports, atomic writes
    resource.py   LocalClusterResource (Dagster) and its environment variables
    __main__.py   the CLI behind make dev, make local-status and make local-stop
"""

from .binary import GET_BINARY_MESSAGE, MISSING_BINARY_MESSAGE, find_cockroach, require_cockroach
from .control import LocalClusterConfig, LocalClusterControl, LocalNode, parse_node_status_csv
from .resource import LIVE_DEFAULTS, REHEARSAL_DEFAULTS, LocalClusterResource, settings_from_env

__all__ = [
    "GET_BINARY_MESSAGE",
    "LIVE_DEFAULTS",
    "MISSING_BINARY_MESSAGE",
    "REHEARSAL_DEFAULTS",
    "LocalClusterConfig",
    "LocalClusterControl",
    "LocalClusterResource",
    "LocalNode",
    "find_cockroach",
    "parse_node_status_csv",
    "require_cockroach",
    "settings_from_env",
]
