"""The Dagster resource for a local cluster, configured from environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from evolution_pipeline.resources.cluster import (
    LIVE,
    ClusterControlResource,
)

from .binary import find_cockroach, require_cockroach
from .control import DEFAULT_DATA_DIRS, LocalClusterConfig, LocalClusterControl, _in_repo

# --- the Dagster resource ---------------------------------------------------------------------------------


class LocalClusterResource(ClusterControlResource):
    """Cluster control over local `cockroach` processes (EVOLUTION_CLUSTER_BACKEND=local).

    Empty strings mean "work it out": cockroach_bin from $COCKROACH_BIN or PATH, data_dir `.data/local`
    (live) or `.data/rehearsal` (rehearsal). A rehearsal needs its own data_dir and port bases.
    """

    cockroach_bin: str = Field(default="", description="cockroach binary; empty: $COCKROACH_BIN, then PATH")
    data_dir: str = Field(default="", description="data folder; empty: .data/local (live) or .data/rehearsal")
    live_data_dir: str = Field(
        default="", description="the live cluster's data folder a rehearsal must never touch"
    )
    host: str = "127.0.0.1"
    sql_port_base: int = 26257
    listen_port_base: int = 26357
    http_port_base: int = 8080
    insecure: bool = Field(default=False, description="start nodes with --insecure (no TLS, no passwords)")
    # Node localities come from the evolution file; these override it (node i: zones[(i - 1) % len(zones)]).
    region: str = "local"
    zones: list[str] = Field(default_factory=list, description="empty: the evolution file's localities")
    cache: str = "128MiB"
    max_sql_memory: str = "128MiB"
    cluster_label: str = "local"
    prometheus_dir: str = Field(
        default="", description="Prometheus runtime folder; empty: <data_dir>/prometheus"
    )
    node_start_timeout_seconds: float = 60.0

    def config(self) -> LocalClusterConfig:
        live_dir = _in_repo(self.live_data_dir) if self.live_data_dir else DEFAULT_DATA_DIRS[LIVE]
        data_dir = (
            _in_repo(self.data_dir) if self.data_dir else DEFAULT_DATA_DIRS.get(self.environment, live_dir)
        )
        return LocalClusterConfig(
            data_dir=data_dir,
            cockroach_bin=find_cockroach(self.cockroach_bin),
            environment=self.environment,
            live_data_dir=live_dir,
            host=self.host,
            sql_port_base=self.sql_port_base,
            listen_port_base=self.listen_port_base,
            http_port_base=self.http_port_base,
            insecure=self.insecure,
            region=self.region,
            zones=tuple(self.zones),
            cache=self.cache,
            max_sql_memory=self.max_sql_memory,
            cluster_label=self.cluster_label,
            prometheus_dir=_in_repo(self.prometheus_dir) if self.prometheus_dir else None,
            start_timeout_seconds=self.node_start_timeout_seconds,
        )

    def describe_offline(self) -> str:
        return LocalClusterControl(self.config()).describe()

    def scale_commands(self, current: int, target: int) -> list[str]:
        """The processes scale_to(target) starts: one `cockroach start` per new node, with the same flags,
        and `cockroach init` once after the first (the binary may not be installed yet: then `cockroach`)."""
        control = LocalClusterControl(self.config())
        binary = control.config.cockroach_bin or "cockroach"
        commands = [" ".join(control.start_args(control.node(i), binary)) + " &"
                    for i in range(current + 1, target + 1)]
        if current == 0 and target > 0:
            commands.append(" ".join(control.init_args(binary)))
        return commands

    def control(self) -> LocalClusterControl:
        # Fail at once (the first op of a phase) when there is no binary, with the one message on getting it.
        require_cockroach(self.cockroach_bin)
        return LocalClusterControl(self.config())

    @classmethod
    def from_environment(cls, env=LIVE, environ: dict | None = None, **fields) -> LocalClusterResource:
        """Build the resource from environment variables (see settings_from_env); `env` is "live",
        "rehearsal" or an object with that `.name`. Explicit `fields` win over the environment."""
        name = getattr(env, "name", env)
        return cls(**({"environment": name} | settings_from_env(name, environ) | fields))


def settings_from_env(environment: str = LIVE, env: dict | None = None) -> dict:
    """LocalClusterResource fields from environment variables; the rehearsal reads the REHEARSAL_ twins.

    live:      COCKROACH_BIN, LOCAL_CRDB_DATA_DIR (.data/local), LOCAL_CRDB_SQL_PORT_BASE (26257),
               LOCAL_CRDB_LISTEN_PORT_BASE (26357), LOCAL_CRDB_HTTP_PORT_BASE (8080), LOCAL_CRDB_INSECURE (false),
               CRDB_CLUSTER_LABEL (local), LOCAL_CRDB_PROMETHEUS_DIR (<live data dir>/prometheus)
    rehearsal: REHEARSAL_LOCAL_CRDB_DATA_DIR (.data/rehearsal), REHEARSAL_LOCAL_CRDB_SQL_PORT_BASE (26457),
               REHEARSAL_LOCAL_CRDB_LISTEN_PORT_BASE (26557), REHEARSAL_LOCAL_CRDB_HTTP_PORT_BASE (8090),
               REHEARSAL_LOCAL_CRDB_INSECURE, REHEARSAL_CRDB_CLUSTER_LABEL (local-rehearsal). Same binary; its
               file_sd targets go to the live Prometheus folder as targets/cockroachdb-rehearsal.json, so the one
               local Prometheus scrapes both clusters; live_data_dir is the live LOCAL_CRDB_DATA_DIR.
    """
    env = os.environ if env is None else env
    rehearsal = environment != LIVE
    defaults = REHEARSAL_DEFAULTS if rehearsal else LIVE_DEFAULTS

    def get(name: str) -> str:
        return env.get(f"REHEARSAL_{name}" if rehearsal else name) or defaults[name]

    live_dir = env.get("LOCAL_CRDB_DATA_DIR") or LIVE_DEFAULTS["LOCAL_CRDB_DATA_DIR"]
    return {
        "cockroach_bin": env.get("COCKROACH_BIN", ""),
        "data_dir": get("LOCAL_CRDB_DATA_DIR"),
        "live_data_dir": live_dir,
        "prometheus_dir": env.get("LOCAL_CRDB_PROMETHEUS_DIR") or str(Path(live_dir) / "prometheus"),
        "sql_port_base": int(get("LOCAL_CRDB_SQL_PORT_BASE")),
        "listen_port_base": int(get("LOCAL_CRDB_LISTEN_PORT_BASE")),
        "http_port_base": int(get("LOCAL_CRDB_HTTP_PORT_BASE")),
        "insecure": get("LOCAL_CRDB_INSECURE").lower() in {"1", "true", "yes"},
        "cluster_label": get("CRDB_CLUSTER_LABEL"),
    }


LIVE_DEFAULTS = {
    "LOCAL_CRDB_DATA_DIR": ".data/local",
    "LOCAL_CRDB_SQL_PORT_BASE": "26257",
    "LOCAL_CRDB_LISTEN_PORT_BASE": "26357",
    "LOCAL_CRDB_HTTP_PORT_BASE": "8080",
    "LOCAL_CRDB_INSECURE": "false",
    "CRDB_CLUSTER_LABEL": "local",
}
REHEARSAL_DEFAULTS = {
    "LOCAL_CRDB_DATA_DIR": ".data/rehearsal",
    "LOCAL_CRDB_SQL_PORT_BASE": "26457",
    "LOCAL_CRDB_LISTEN_PORT_BASE": "26557",
    "LOCAL_CRDB_HTTP_PORT_BASE": "8090",
    "LOCAL_CRDB_INSECURE": "false",
    "CRDB_CLUSTER_LABEL": "local-rehearsal",
}
