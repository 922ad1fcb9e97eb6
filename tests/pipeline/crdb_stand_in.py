"""One environment's stand-in CockroachDB for the pipeline tests: the wire-level SQL stand-in
(tests/doubles/crdb_sql.py, CockroachDB's rules with their upstream evidence) bound to the world file.

The real CrdbSqlResource talks to it over the PostgreSQL protocol, so every statement the ops send and every
result they parse is exercised. The world file stays the cluster control only: its ready count is the
stand-in's live nodes, and a rehearsal reset recorded there recreates the stand-in's cluster, as deleting
and recreating a real cluster would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.doubles.crdb_sql import CrdbSqlStandIn
from tests.doubles.pgwire import PgError
from tests.doubles.pipeline_world import live_node_ids, read_world

# The state a freshly initialised cluster has; everything else (server, lock, callables, logs) is kept.
_KEPT = {"server", "lock", "live_nodes", "node_locality", "node_stores", "insecure", "version", "statements",
         "faults"}


@dataclass
class NodeFault:
    nodes: int
    pattern: re.Pattern
    sqlstate: str
    message: str
    times: int


class PipelineCrdb(CrdbSqlStandIn):
    def __init__(self, world_path: str, *, insecure: bool = False):
        self.world_path = str(world_path)
        super().__init__(live_nodes=self._ready, insecure=insecure)
        self.resets_seen = 0
        self.node_faults: list[NodeFault] = []

    def _ready(self) -> int:
        return read_world(self.world_path)["ready"]

    def live(self) -> list[int]:
        """The world's running nodes (any set a drill left up), less those a test killed here."""
        return [n for n in live_node_ids(read_world(self.world_path)) if n not in self.down]

    def fail_with_nodes(self, nodes: int, pattern: str, sqlstate: str, message: str, times: int = 1) -> None:
        """Like fail_next, but only while `nodes` nodes are live (e.g. phase 1's verify_replication)."""
        with self.lock:
            self.node_faults.append(NodeFault(nodes, re.compile(pattern, re.IGNORECASE | re.DOTALL), sqlstate, message, times))

    def handle(self, session, sql: str):
        with self.lock:
            self._follow_resets()
            live = self.live_nodes()
            for fault in self.node_faults:
                if fault.times > 0 and fault.nodes == live and fault.pattern.search(sql):
                    fault.times -= 1
                    raise PgError(fault.sqlstate, fault.message)
            return super().handle(session, sql)

    def _follow_resets(self) -> None:
        resets = read_world(self.world_path)["calls"].get("reset", 0)
        if resets != self.resets_seen:
            self.recreate()
            self.resets_seen = resets

    def recreate(self) -> None:
        """A freshly initialised cluster behind the same URL (the statement log is kept)."""
        with self.lock:
            fresh = CrdbSqlStandIn(live_nodes=self.live_nodes, node_locality=self.node_locality,
                                   insecure=self.insecure)
            for name, value in vars(fresh).items():
                if name not in _KEPT:
                    setattr(self, name, value)

    # --- what the tests assert on -------------------------------------------------------------------------
    def count(self, pattern: str) -> int:
        return len(self.statements_matching(pattern))

    def zone(self, target: str) -> str:
        """SHOW ZONE CONFIGURATION's raw_config_sql for target, as the cluster holds it now."""
        return self.zone_sql(target)
