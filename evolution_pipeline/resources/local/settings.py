"""A local cluster's settings: environment variables -> fields -> LocalClusterConfig, without Dagster.

The Dagster resource (resource.py) and the CLI behind make dev (__main__.py) both build their
LocalClusterConfig here, so the two agree; this module stays free of Dagster because the CLI runs several
times per `make dev` and importing Dagster costs over a second of CPU each time.
"""

from __future__ import annotations

import os
from pathlib import Path

from evolution_pipeline.resources.cluster_control import LIVE, ClusterControlError

from .binary import find_cockroach
from .control import DEFAULT_DATA_DIRS, LocalClusterConfig, _in_repo

# The LocalClusterResource fields (besides environment and the timeouts every cluster resource has) and their
# defaults; the resource declares its fields with these. Empty strings mean "work it out" (see
# local_cluster_config).
FIELD_DEFAULTS: dict = {
    "cockroach_bin": "",
    "data_dir": "",
    "live_data_dir": "",
    "host": "127.0.0.1",
    "sql_port_base": 26257,
    "listen_port_base": 26357,
    "http_port_base": 8080,
    "insecure": False,
    # Node localities come from the evolution file; these override it (node i: zones[(i - 1) % len(zones)]).
    "region": "local",
    "zones": (),
    "cache": "128MiB",
    "max_sql_memory": "128MiB",
    "cluster_label": "local",
    "prometheus_dir": "",
    "node_start_timeout_seconds": 60.0,
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


def local_cluster_config(environment: str = LIVE, **fields) -> LocalClusterConfig:
    """The LocalClusterConfig for these resource fields (FIELD_DEFAULTS for any not given).

    Relative folders are relative to the repository; an empty data_dir is the environment's default folder
    (.data/local or .data/rehearsal), an empty live_data_dir .data/local, an empty cockroach_bin
    $COCKROACH_BIN, then PATH, then .data/bin (None when there is none: whatever needs it says how to get it).
    """
    unknown = sorted(set(fields) - set(FIELD_DEFAULTS))
    if unknown:
        raise ClusterControlError(
            f"unknown local cluster setting(s) {', '.join(unknown)}: use {', '.join(sorted(FIELD_DEFAULTS))}"
        )
    f = FIELD_DEFAULTS | fields
    live_dir = _in_repo(f["live_data_dir"]) if f["live_data_dir"] else DEFAULT_DATA_DIRS[LIVE]
    data_dir = _in_repo(f["data_dir"]) if f["data_dir"] else DEFAULT_DATA_DIRS.get(environment, live_dir)
    return LocalClusterConfig(
        data_dir=data_dir,
        cockroach_bin=find_cockroach(f["cockroach_bin"]),
        environment=environment,
        live_data_dir=live_dir,
        host=f["host"],
        sql_port_base=f["sql_port_base"],
        listen_port_base=f["listen_port_base"],
        http_port_base=f["http_port_base"],
        insecure=f["insecure"],
        region=f["region"],
        zones=tuple(f["zones"]),
        cache=f["cache"],
        max_sql_memory=f["max_sql_memory"],
        cluster_label=f["cluster_label"],
        prometheus_dir=_in_repo(f["prometheus_dir"]) if f["prometheus_dir"] else None,
        start_timeout_seconds=f["node_start_timeout_seconds"],
    )


def config_from_env(environment: str = LIVE, environ: dict | None = None, **fields) -> LocalClusterConfig:
    """What LocalClusterResource.from_environment(environment, environ, **fields).config() gives, without
    building the Dagster resource: explicit `fields` win over the environment."""
    return local_cluster_config(environment, **(settings_from_env(environment, environ) | fields))
