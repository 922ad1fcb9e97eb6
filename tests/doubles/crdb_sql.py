"""A wire-level CockroachDB stand-in: PostgreSQL protocol on 127.0.0.1, CockroachDB answers.

The product's real CrdbSqlResource (psycopg 3, ClientCursor, autocommit) talks to it unchanged through
`standin.url`, so our SQL text and our result parsing run as they would against a cluster. It answers the
statements the pipeline sends with CockroachDB's result columns, types, SQLSTATEs and messages, refuses
what CockroachDB refuses (zone validation, two voters, duplicate users, passwords in insecure mode,
unknown storage schemes) and rejects any statement it does not recognise with 42601, so unknown SQL never
passes silently. Each rule cites its upstream source (cockroachdb/cockroach unless another repo is named).

Topology it cannot know comes from callables: `live_nodes()` (nodes 1..n are live; a node above n that
once joined is dead, and still counts towards the allocator's targets as CockroachDB's ClusterNodeCount
does until decommissioned, which the stand-in never does), `node_locality(node_id)` and
`node_stores(node_id)`; kill(n)/revive(n) stop any single node.

Store IDs are not node IDs, as on a real cluster: the replica arrays of SHOW RANGES hold STORE IDs
(cockroachdb/cockroach pkg/sql/crdb_internal.go, crdbInternalRangesNoLeasesTable: "All the values in the
`*replicas` columns correspond to store IDs", each array built from `replica.StoreID`). The default
topology gives node 1 two stores (1 and 2: the bootstrap node's first store is always store 1 on node 1,
pkg/kv/kvserver/kvstorage/init.go FirstNodeID/FirstStoreID) and node n > 1 the store n + 1, so code that
reads a store ID as a node ID fails the tests. The allocator works per node (never two replicas of a range
on one node); a range's replica on a node with several stores sits on one of them (by range ID). Replication follows the allocator one change per
range each time ranges are read (SHOW RANGES / SHOW CLUSTER RANGES) or on step(); see crdb_ranges.py.

Usage:
    with CrdbSqlStandIn(live_nodes=lambda: world.nodes) as crdb:
        resource = CrdbSqlResource(url=crdb.url)
        crdb.fail_next(r"^BACKUP", "40001", "restart transaction: TransactionRetryWithProtoRefreshError")
        crdb.range_health()  # {'ranges': .., 'under_replicated': .., 'over_replicated': .., 'unavailable': ..}
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from . import crdb_statements
from .crdb_ranges import Allocator, Range
from .crdb_zones import Zone, parent_target, stock_zones
from .pgwire import PgError, PgWireServer, Result, Session

VERSION = "v26.2.1"  # versions.toml [cockroach] version


def default_locality(node_id: int) -> str:
    """The local backend's --locality shape: region=<r>,zone=<r>-a/b/c."""
    return f"region=local,zone=local-{chr(ord('a') + node_id - 1)}"


def default_stores(node_id: int) -> tuple[int, ...]:
    """Node 1 runs two stores (1, 2), node n > 1 one store, n + 1: store IDs come from a cluster-wide counter
    (pkg/kv/kvserver/kvstorage/init.go FirstStoreID = 1 on FirstNodeID = 1; later stores allocate the next
    IDs), so they drift from node IDs as soon as one node has two stores."""
    return (1, 2) if node_id == 1 else (node_id + 1,)


def one_store_each(node_id: int) -> tuple[int, ...]:
    """Every node one store whose ID equals the node's (a cluster whose nodes joined in order)."""
    return (node_id,)


@dataclass
class Fault:
    pattern: re.Pattern
    sqlstate: str
    message: str
    times: int


@dataclass
class Backup:
    path: str  # "/2026/11/30-021500.00", pkg/backup/backupdest dateBasedFolderName "/2006/01/02-150405.00"
    end_time: dt.datetime
    full_cluster: bool
    databases: dict[str, dict[str, dict]]  # db -> table -> {"rows", "bytes"}


@dataclass
class Table:
    table_id: int
    rows: int = 0
    splits: set[str] = field(default_factory=set)

    @property
    def bytes(self) -> int:
        return self.rows * 100  # a size only so SHOW BACKUP has numbers that grow with the rows


class CrdbSqlStandIn:
    """CockroachDB over the PostgreSQL wire protocol, for tests. Thread-safe; state readable from Python."""

    def __init__(self, live_nodes: Callable[[], int] = lambda: 1,
                 node_locality: Callable[[int], str] = default_locality, insecure: bool = False,
                 version: str = VERSION, node_stores: Callable[[int], tuple[int, ...]] = default_stores):
        self.live_nodes, self.node_locality, self.insecure, self.version = (
            live_nodes, node_locality, insecure, version)
        self.node_stores = node_stores
        self.lock = threading.RLock()
        self.statements: list[tuple[str, str, str]] = []  # (user, database, sql), in arrival order
        self.faults: list[Fault] = []
        self.databases: dict[str, dict[str, Table]] = {"defaultdb": {}, "postgres": {}, "system": {}}
        self.restored: set[str] = set()
        self.users: set[str] = {"root", "admin"}
        self.passwords: dict[str, str] = {}
        self.zones: dict[str, Zone] = stock_zones()
        self.cluster_settings: dict[str, str] = {}
        self.backups: dict[str, list[Backup]] = {}
        self.ranges: list[Range] = _bootstrap_ranges()
        self.ids = itertools.count(104)  # first user descriptor id on recent versions
        self.job_ids = itertools.count(1_100_000_000_000_000_000)
        self.seen_nodes = 1
        self.down: set[int] = set()  # nodes stopped by a test (kill/revive), on top of live_nodes()
        self.server: PgWireServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> CrdbSqlStandIn:
        self.server = PgWireServer(self.handle, self.status_params).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None

    def __enter__(self) -> CrdbSqlStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.server, "start() the stand-in first"
        return f"postgresql://root@127.0.0.1:{self.server.port}/defaultdb?sslmode=disable"

    def status_params(self, session: Session) -> dict[str, str]:
        """pkg/sql/pgwire/conn.go statusReportParams (+ session_authorization, sent separately there).
        server_version: CockroachDB reports PostgreSQL 13.0.0 (pkg/sql/sessiondatapb PgServerVersion)."""
        return {
            "server_version": "13.0.0", "server_encoding": "UTF8", "client_encoding": "UTF8",
            "application_name": session.application_name, "DateStyle": "ISO, MDY",
            "IntervalStyle": "postgres", "is_superuser": "on" if session.user == "root" else "off",
            "TimeZone": "UTC", "integer_datetimes": "on", "standard_conforming_strings": "on",
            "crdb_version": self.build_info(), "session_authorization": session.user,
        }

    def build_info(self) -> str:
        return f"CockroachDB CCL {self.version} (x86_64-pc-linux-gnu, built 2026/05/01 00:00:00, go1.23.12)"

    # --- faults and the statement path ---------------------------------------------------------------------
    def fail_next(self, pattern: str, sqlstate: str, message: str, times: int = 1) -> None:
        """The next `times` statements matching `pattern` (regex, case-insensitive) fail with this error."""
        with self.lock:
            self.faults.append(Fault(re.compile(pattern, re.I | re.S), sqlstate, message, times))

    def handle(self, session: Session, sql: str) -> Result:
        with self.lock:
            self.statements.append((session.user, session.database, sql))
            self.seen_nodes = max(self.seen_nodes, self.live_nodes())
            for fault in self.faults:
                if fault.times > 0 and fault.pattern.search(sql):
                    fault.times -= 1
                    raise PgError(fault.sqlstate, fault.message)
            return crdb_statements.dispatch(self, session, sql)

    # --- topology and replication ---------------------------------------------------------------------------
    def live(self) -> list[int]:
        return [n for n in range(1, self.live_nodes() + 1) if n not in self.down]

    def kill(self, node_id: int) -> None:
        """Stop one node (any ID, node 1 included): its replicas stay in the descriptors, dead."""
        with self.lock:
            self.down.add(node_id)

    def revive(self, node_id: int) -> None:
        with self.lock:
            self.down.discard(node_id)

    def known_nodes(self) -> list[int]:
        """Every node that ever joined (live or dead), as the node status server lists them."""
        return list(range(1, max(self.seen_nodes, self.live_nodes()) + 1))

    def locality(self, node_id: int) -> dict[str, str]:
        return dict(t.split("=", 1) for t in self.node_locality(node_id).split(",") if "=" in t)

    def store_of(self, r: Range, node_id: int) -> int:
        """The store holding range r's replica on `node_id` (one of the node's stores, chosen by range ID)."""
        stores = self.node_stores(node_id)
        return stores[r.range_id % len(stores)]

    def node_of_store(self, store_id: int) -> int:
        """For tests: the node a store belongs to (what crdb_internal.kv_store_status would say)."""
        for node in self.known_nodes():
            if store_id in self.node_stores(node):
                return node
        raise KeyError(f"no known node has store {store_id}")

    def allocator(self) -> Allocator:
        return Allocator(self.live(), self.locality, len(self.known_nodes()))

    def complete_zone(self, target: str) -> tuple[str, Zone]:
        """The zone that applies to `target` and its complete config (GetZoneConfigInTxn): a target with
        no zone of its own shows and uses its parent's (RANGE default at the root)."""
        own = self.zones.get(target)
        parent = parent_target(target)
        if own is None:
            return self.complete_zone(parent) if parent else (target, Zone())
        if parent is None:
            return target, own.clone()
        return target, own.inherit_from(self.complete_zone(parent)[1])

    def zone_of(self, r: Range) -> Zone:
        return self.complete_zone(r.zone_target)[1]

    def step(self) -> list[str]:
        """One replicate-queue pass: at most one change per range. Returns what changed."""
        with self.lock:
            alloc = self.allocator()
            return [c for r in self.ranges if (c := alloc.step(r, self.zone_of(r)))]

    def settle(self, max_steps: int = 50) -> int:
        """Step until nothing changes (or max_steps). Returns the number of passes that changed something."""
        for n in range(max_steps):
            if not self.step():
                return n
        return max_steps

    # --- state for tests and the metrics stand-in -----------------------------------------------------------
    def range_state(self) -> list[dict]:
        with self.lock:
            return [{"range_id": r.range_id, "zone": r.zone_target, "database": r.database, "table": r.table,
                     "voters": list(r.voters), "non_voters": list(r.non_voters), "leaseholder": r.leaseholder}
                    for r in self.ranges]

    def range_health(self) -> dict[str, int]:
        """Cluster totals as sum() over the stores' ranges_* gauges gives them (see range_health_by_node)."""
        with self.lock:
            totals = {"ranges": len(self.ranges), "under_replicated": 0, "over_replicated": 0, "unavailable": 0}
            for counts in self.range_health_by_node().values():
                for key in ("under_replicated", "over_replicated", "unavailable"):
                    totals[key] += counts[key]
            return totals

    def range_health_by_node(self) -> dict[int, dict[str, int]]:
        """Per node (one store each): the ranges it counts, as replica_metrics.go calcRangeCounter assigns
        them: the live leaseholder counts a range, else its first live replica; a range with no live
        replica at all is counted by nobody (as on a real cluster)."""
        with self.lock:
            # One look at the topology for the whole count (live_nodes() may read a file each time), as
            # allocator() would take it; one complete zone per zone target (zone_of is the target's).
            live_list, known = self.live(), self.known_nodes()
            alloc, live = Allocator(live_list, self.locality, len(known)), set(live_list)
            out = {n: {"ranges": 0, "under_replicated": 0, "over_replicated": 0, "unavailable": 0}
                   for n in known}
            zones: dict[str, Zone] = {}
            for r in self.ranges:
                counter = r.leaseholder if r.leaseholder in live else next(
                    (n for n in r.voters + r.non_voters if n in live), None)
                if counter is None:
                    continue
                zone = zones.get(r.zone_target)
                if zone is None:
                    zone = zones[r.zone_target] = self.zone_of(r)
                h = alloc.health(r, zone)
                row = out.setdefault(counter, {"ranges": 0, "under_replicated": 0, "over_replicated": 0,
                                               "unavailable": 0})
                row["ranges"] += 1
                row["under_replicated"] += h.under_replicated
                row["over_replicated"] += h.over_replicated
                row["unavailable"] += h.unavailable
            return out

    def replicas_per_node(self) -> dict[int, dict[str, int]]:
        """Per node: replicas, voters, non_voters, leaseholders (for per-store gauges)."""
        with self.lock:
            out = {n: {"replicas": 0, "voters": 0, "non_voters": 0, "leaseholders": 0} for n in self.known_nodes()}
            for r in self.ranges:
                for n in r.voters:
                    out.setdefault(n, dict.fromkeys(("replicas", "voters", "non_voters", "leaseholders"), 0))
                    out[n]["replicas"] += 1
                    out[n]["voters"] += 1
                for n in r.non_voters:
                    out.setdefault(n, dict.fromkeys(("replicas", "voters", "non_voters", "leaseholders"), 0))
                    out[n]["replicas"] += 1
                    out[n]["non_voters"] += 1
                if r.leaseholder is not None:
                    out[r.leaseholder]["leaseholders"] += 1
            return out

    def zone_sql(self, target: str) -> str:
        from .crdb_zones import to_sql
        with self.lock:
            applies, zone = self.complete_zone(target)
            return to_sql(applies, zone)

    def statements_matching(self, pattern: str) -> list[str]:
        rx = re.compile(pattern, re.I | re.S)
        with self.lock:
            return [sql for _, _, sql in self.statements if rx.search(sql)]


def _bootstrap_ranges() -> list[Range]:
    """The ranges of a freshly initialised cluster, all on node 1: meta, liveness, the system span,
    timeseries (follows RANGE default), system tables (DATABASE system), and the tail of the keyspace.
    Range boundaries as SHOW CLUSTER RANGES prints them (keys.PrettyPrint)."""
    spans = [("/Min", "/System/NodeLiveness", "RANGE meta"),
             ("/System/NodeLiveness", "/System/NodeLivenessMax", "RANGE liveness"),
             ("/System/NodeLivenessMax", "/System/tsd", "RANGE system"),
             ("/System/tsd", '/System/"tse"', "RANGE timeseries"),
             ('/System/"tse"', "/Table/3", "RANGE system")]
    spans += [(f"/Table/{t}", f"/Table/{t + 1}", "DATABASE system") for t in range(3, 12)]
    spans += [("/Table/12", "/Max", "RANGE default")]
    return [Range(i, s, e, z, database="system" if z == "DATABASE system" else None, voters=[1])
            for i, (s, e, z) in enumerate(spans, start=1)]
