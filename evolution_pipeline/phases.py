"""The phase table: the single source of truth for the evolution.

Assets, checks, the evolve job, the docs, the diagrams and the manifests all follow this table; tests
compare them against it. Phase 3 (multi-cluster / DR) is conceptual and deliberately absent here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"

# CockroachDB's own default for system ranges (meta, liveness, system database): 5 replicas.
DEFAULT_SYSTEM_REPLICAS = 5


@dataclass(frozen=True)
class Phase:
    name: str
    index: int
    title: str
    nodes: int
    # num_replicas for the default range (all application data).
    replication_factor: int
    # num_replicas for the system database and the meta/system/liveness ranges.
    system_replication_factor: int
    sql_files: tuple[str, ...]
    backup_label: str
    description: str
    # SQL login users this phase creates (password from the environment variable in SQL_USERS).
    users: tuple[str, ...] = ()

    def sql_paths(self) -> list[Path]:
        return [SQL_DIR / f for f in self.sql_files]

    @property
    def expected_data_replicas(self) -> int:
        return needed_voters(self.replication_factor, self.nodes)

    @property
    def expected_system_replicas(self) -> int:
        return needed_voters(self.system_replication_factor, self.nodes)


def needed_voters(zone_replicas: int, live_nodes: int) -> int:
    """How many voters CockroachDB targets for a range, given its zone's num_replicas and the live nodes.

    Mirrors the allocator's rule (pkg/kv/kvserver/allocator GetNeededVoters): never more voters than live
    nodes, and never an even count unless the zone asked for exactly that count. So num_replicas = 5 on
    3 nodes targets 3 voters, and num_replicas = 2 on 2 nodes targets 2.
    """
    need = min(zone_replicas, live_nodes)
    if need == zone_replicas:
        return need
    if need % 2 == 0:
        need -= 1
    need = max(need, 3)
    return min(need, zone_replicas)


PHASES: tuple[Phase, ...] = (
    Phase(
        name="phase0_single_node",
        index=0,
        title="Phase 0: single node",
        nodes=1,
        replication_factor=1,
        system_replication_factor=1,
        sql_files=("00-bootstrap.sql", "05-phase0-writer-user.sql"),
        backup_label="phase0",
        users=("app_writer",),
        description=(
            "One CockroachDB node with replication factor 1 for data and system ranges: the PostgreSQL-like "
            "starting point. The app schema and seed data are created and the writer user gets its password. "
            "No fault tolerance at all: losing the node loses the service."
        ),
    ),
    Phase(
        name="phase1_two_nodes",
        index=1,
        title="Phase 1: two nodes",
        nodes=2,
        replication_factor=2,
        system_replication_factor=2,
        sql_files=("10-phase1-reader-user.sql",),
        backup_label="phase1",
        users=("app_reader",),
        description=(
            "A second node joins and every range gets two replicas; the read-only user serves the reader "
            "path. RF 2 tolerates NO node failure (a majority of 2 is 2): it spreads reads and copies the "
            "data, it does not make the cluster highly available. CockroachDB uses an even replica count "
            "only because the zone configs ask for it explicitly."
        ),
    ),
    Phase(
        name="phase2_three_nodes",
        index=2,
        title="Phase 2: three nodes",
        nodes=3,
        replication_factor=3,
        system_replication_factor=DEFAULT_SYSTEM_REPLICAS,
        sql_files=("20-phase2-rf3.sql",),
        backup_label="phase2",
        description=(
            "A third node joins; data ranges get three replicas and system ranges return to CockroachDB's "
            "default of 5 (3 voters on 3 nodes). The cluster now survives the loss of any one node."
        ),
    ),
)

# The application's SQL users and the environment variable (or Kubernetes Secret key) holding each password.
SQL_USERS: dict[str, str] = {
    "app_writer": "APP_WRITER_PASSWORD",  # the writer path: INSERT logins, read search terms
    "app_reader": "APP_READER_PASSWORD",  # the legacy reader path: SELECT only, truly cannot write
}
APP_DATABASE = "app"

PHASES_BY_NAME: dict[str, Phase] = {p.name: p for p in PHASES}


def get_phase(name: str) -> Phase:
    try:
        return PHASES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown phase {name!r}; known phases: {', '.join(PHASES_BY_NAME)}") from None


def previous_phase(phase: Phase) -> Phase | None:
    return PHASES[phase.index - 1] if phase.index > 0 else None
