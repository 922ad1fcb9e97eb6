"""The Dagster resource for a local cluster, configured from environment variables."""

from __future__ import annotations

from pydantic import Field

from evolution_pipeline.resources.cluster import (
    LIVE,
    ClusterControlResource,
)

from .backend import LocalClusterMethods

# Re-exported: they lived here before settings.py, and callers still import them from here.
from .settings import FIELD_DEFAULTS as D
from .settings import LIVE_DEFAULTS, REHEARSAL_DEFAULTS, settings_from_env

__all__ = ["LIVE_DEFAULTS", "REHEARSAL_DEFAULTS", "LocalClusterResource", "settings_from_env"]

# --- the Dagster resource ---------------------------------------------------------------------------------


class LocalClusterResource(LocalClusterMethods, ClusterControlResource):
    """Cluster control over local `cockroach` processes (EVOLUTION_CLUSTER_BACKEND=local).

    Empty strings mean "work it out": cockroach_bin from $COCKROACH_BIN or PATH, data_dir `.data/local`
    (live) or `.data/rehearsal` (rehearsal). A rehearsal needs its own data_dir and port bases.
    """

    # Defaults from settings.FIELD_DEFAULTS, which the CLI (without Dagster) uses too.
    cockroach_bin: str = Field(
        default=D["cockroach_bin"], description="cockroach binary; empty: $COCKROACH_BIN, then PATH"
    )
    data_dir: str = Field(
        default=D["data_dir"], description="data folder; empty: .data/local (live) or .data/rehearsal"
    )
    live_data_dir: str = Field(
        default=D["live_data_dir"], description="the live cluster's data folder a rehearsal must never touch"
    )
    host: str = D["host"]
    sql_port_base: int = D["sql_port_base"]
    listen_port_base: int = D["listen_port_base"]
    http_port_base: int = D["http_port_base"]
    insecure: bool = Field(
        default=D["insecure"], description="start nodes with --insecure (no TLS, no passwords)"
    )
    # Node localities come from the evolution file; these override it (node i: zones[(i - 1) % len(zones)]).
    region: str = D["region"]
    zones: list[str] = Field(
        default_factory=lambda: list(D["zones"]), description="empty: the evolution file's localities"
    )
    cache: str = D["cache"]
    max_sql_memory: str = D["max_sql_memory"]
    cluster_label: str = D["cluster_label"]
    prometheus_dir: str = Field(
        default=D["prometheus_dir"], description="Prometheus runtime folder; empty: <data_dir>/prometheus"
    )
    node_start_timeout_seconds: float = D["node_start_timeout_seconds"]

    @classmethod
    def from_environment(cls, env=LIVE, environ: dict | None = None, **fields) -> LocalClusterResource:
        """Build the resource from environment variables (see settings_from_env); `env` is "live",
        "rehearsal" or an object with that `.name`. Explicit `fields` win over the environment."""
        name = getattr(env, "name", env)
        return cls(**({"environment": name} | settings_from_env(name, environ) | fields))
