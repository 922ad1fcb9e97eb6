"""What the suite reads from the real cluster with its own SQL, independent of the product's parsing.

Columns are CockroachDB's own: SHOW RANGES FROM DATABASE / SHOW CLUSTER RANGES return `range_id replicas
replica_localities voting_replicas non_voting_replicas ...` with arrays of STORE ids (pkg/sql/crdb_internal.go,
ranges_no_leases appends replica.StoreID), and WITH DETAILS adds `lease_holder` (a store too: the lease's
Replica.StoreID) (cockroachdb/cockroach pkg/sql/logictest/testdata/logic_test/show_ranges). The suite maps
stores to nodes through crdb_internal.kv_store_status before it reasons about nodes. SHOW BACKUP returns
`database_name parent_schema_name object_name object_type backup_type start_time end_time size_bytes rows
is_full_cluster regions`, plus `file_bytes` WITH check_files (pkg/backup/show.go backupShowerHeaders).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from evolution_pipeline.phases import APP_DATABASE, Phase

ZONES = {"data": ("RANGE default",), "system": ("DATABASE system", "RANGE meta", "RANGE system", "RANGE liveness")}


def query(url: str, statement, params: dict | None = None, database: str | None = None) -> list[dict]:
    kwargs = {"autocommit": True, "row_factory": dict_row, "connect_timeout": 10,
              "application_name": "crdb-real-conformance"}
    if database:
        kwargs["dbname"] = database
    with psycopg.connect(url, **kwargs) as conn, psycopg.ClientCursor(conn) as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


@dataclass(frozen=True)
class Range:
    scope: str  # "app" or "cluster"
    range_id: int
    voters: tuple[int, ...]
    non_voters: tuple[int, ...]
    lease_holder: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.voters), len(self.non_voters)


@dataclass
class Snapshot:
    """One phase's placement, read right after its asset materialized (before the next phase changes it)."""

    phase: str
    ranges: list[Range]
    zones: dict[str, str]  # zone target -> raw_config_sql
    node1_locality: str
    taken_at: float = 0.0
    app_readyz: dict = field(default_factory=dict)  # the sample app's /readyz body at the same moment

    def shapes(self, scope: str) -> Counter:
        return Counter(r.shape for r in self.ranges if r.scope == scope)


def read_snapshot(url: str, phase: Phase, taken_at: float) -> Snapshot:
    app = query(url, sql.SQL("SELECT range_id, voting_replicas, non_voting_replicas, lease_holder "
                             "FROM [SHOW RANGES FROM DATABASE {} WITH DETAILS]").format(sql.Identifier(APP_DATABASE)))
    cluster = query(url, "SELECT range_id, replicas, replica_localities, voting_replicas, non_voting_replicas "
                         "FROM [SHOW CLUSTER RANGES]")
    nodes = store_nodes(url)
    ranges = [Range("app", int(r["range_id"]), _nodes(r["voting_replicas"], nodes),
                    _nodes(r["non_voting_replicas"], nodes),
                    nodes[int(r["lease_holder"])] if r["lease_holder"] is not None else None) for r in app]
    ranges += [Range("cluster", int(r["range_id"]), _nodes(r["voting_replicas"], nodes),
                     _nodes(r["non_voting_replicas"], nodes)) for r in cluster]
    zones = {target: zone_sql(url, target) for targets in ZONES.values() for target in targets}
    return Snapshot(phase.name, ranges, zones, node_locality(cluster, 1, nodes), taken_at)


def store_nodes(url: str) -> dict[int, int]:
    """Store ID -> node ID, from crdb_internal.kv_store_status (one row per store: node_id, store_id). The
    table is behind the session variable allow_unsafe_internals from v26.1 (pkg/sql/unsafesql); this suite,
    never the product, turns it on for its own root session."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10,
                         application_name="crdb-real-conformance") as conn:
        try:
            conn.execute("SET allow_unsafe_internals = true")
        except psycopg.errors.UndefinedObject:  # a version without the gate: nothing to turn on
            pass
        rows = conn.execute("SELECT store_id, node_id FROM crdb_internal.kv_store_status").fetchall()
    return {int(r["store_id"]): int(r["node_id"]) for r in rows}


def _nodes(stores, nodes: dict[int, int]) -> tuple[int, ...]:
    """The nodes holding `stores` (a node with two stores of one range would count once: CockroachDB never
    places two replicas of a range on one node)."""
    return tuple(sorted({nodes[int(s)] for s in stores or ()}))


def node_locality(cluster_rows: list[dict], node_id: int, nodes: dict[int, int]) -> str:
    """Node `node_id`'s locality as the cluster reports it: replicas[i] (a store) has replica_localities[i]."""
    for row in cluster_rows:
        for store, locality in zip(row["replicas"] or (), row["replica_localities"] or (), strict=False):
            if nodes.get(int(store)) == node_id:
                return locality
    return ""


def zone_sql(url: str, target: str) -> str:
    rows = query(url, f"SHOW ZONE CONFIGURATION FROM {target}")
    return rows[0]["raw_config_sql"] if rows else ""


def zone_field(raw_config_sql: str, name: str) -> str | None:
    """The value of `name = ...` in raw_config_sql (a number or a quoted string), None when not set."""
    m = re.search(rf"\b{name}\s*=\s*('(?:[^']|'')*'|\d+)", raw_config_sql)
    return m.group(1).strip("'") if m else None


# --- backups -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupTable:
    schema: str
    name: str
    rows: int
    size_bytes: int
    file_bytes: int
    end_time: dt.datetime


def show_backup(url: str, uri: str) -> list[BackupTable]:
    """The app's tables in the latest backup of `uri`, with check_files: every file is read back."""
    rows = query(url, "SHOW BACKUP FROM LATEST IN %(uri)s WITH check_files", {"uri": uri})
    return [BackupTable(r["parent_schema_name"], r["object_name"], int(r["rows"] or 0), int(r["size_bytes"] or 0), int(r["file_bytes"] or 0),
                        r["end_time"])
            for r in rows if r["database_name"] == APP_DATABASE and r["object_type"] == "table"]


def database_exists(url: str, name: str) -> bool:
    return bool(query(url, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = %(n)s", {"n": name}))
