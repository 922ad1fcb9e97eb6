"""The phase table: the single source of truth for the evolution.

Assets, checks, the evolve job, the docs, the diagrams and the manifests all follow this table; tests
compare them against it. Phase 3 (multi-cluster / DR) is conceptual and deliberately absent here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .roles import APP_PATHS, initial_password_env

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"

# CockroachDB's own default for system ranges (meta, liveness, system database): 5 replicas.
DEFAULT_SYSTEM_REPLICAS = 5


@dataclass(frozen=True)
class Replication:
    """One zone's replication, as the phase asks for it (the fields of ALTER ... CONFIGURE ZONE USING).

    num_voters == num_replicas means no non-voters. CockroachDB refuses num_replicas = 2 unless num_voters
    is set, and refuses num_voters = 2 (cockroachdb/cockroach pkg/config/zonepb/zone.go ZoneConfig.Validate:
    "at least 3 replicas are required for multi-replica configurations", "at least 3 voting replicas are
    required ..."), hence phase 1's one voter plus one non-voting replica instead of two voters.
    """

    num_replicas: int
    num_voters: int
    # voter_constraints = node 1's locality (read from the cluster at run time): the one voter, and with it
    # the lease (non-voters cannot hold leases), stays on node 1; the other copies are read replicas.
    pin_voters_to_first_node: bool = False

    def __post_init__(self):
        if not 1 <= self.num_voters <= self.num_replicas:
            raise ValueError(f"num_voters must be between 1 and num_replicas, got {self}")

    @property
    def num_non_voters(self) -> int:
        # cockroachdb/cockroach pkg/roachpb/span_config.go SpanConfig.GetNumNonVoters
        return self.num_replicas - self.num_voters

    def expected_voters(self, nodes: int) -> int:
        return needed_voters(self.num_voters, nodes)

    def expected_non_voters(self, nodes: int) -> int:
        return needed_non_voters(self.expected_voters(nodes), self.num_non_voters, nodes)

    def describe(self) -> str:
        text = f"num_replicas = {self.num_replicas}, num_voters = {self.num_voters}"
        return text + (", voters pinned to node 1" if self.pin_voters_to_first_node else "")


@dataclass(frozen=True)
class Phase:
    name: str
    index: int
    title: str
    nodes: int
    data: Replication  # RANGE default: all application data
    system: Replication  # DATABASE system, RANGE meta, RANGE system, RANGE liveness
    sql_files: tuple[str, ...]
    backup_label: str
    description: str
    # SQL login users this phase creates: a path's two rotation users (evolution_pipeline/roles.py).
    # Only the first gets a password, from the environment variable in SQL_USERS, and only when created.
    users: tuple[str, ...] = ()
    # Groups (roles without LOGIN) this phase creates before its SQL file grants them privileges.
    groups: tuple[str, ...] = ()

    def sql_paths(self) -> list[Path]:
        return [SQL_DIR / f for f in self.sql_files]

    @property
    def expected_data_voters(self) -> int:
        return self.data.expected_voters(self.nodes)

    @property
    def expected_data_non_voters(self) -> int:
        return self.data.expected_non_voters(self.nodes)

    @property
    def expected_system_voters(self) -> int:
        return self.system.expected_voters(self.nodes)

    @property
    def expected_system_non_voters(self) -> int:
        return self.system.expected_non_voters(self.nodes)

    @property
    def pins_voters(self) -> bool:
        return self.data.pin_voters_to_first_node or self.system.pin_voters_to_first_node

    @property
    def failures_tolerated(self) -> int:
        """Node failures every range survives: a majority of its voters must stay up. Mirrors
        maxFailuresBeforeUnavailability (cockroachdb/cockroach pkg/sql/region_util.go): ((voters + 1) / 2) - 1."""
        voters = min(self.expected_data_voters, self.expected_system_voters)
        return (voters + 1) // 2 - 1

    def replication_facts(self) -> dict[str, str | int]:
        """What the phase asks of CockroachDB and what the allocator will target: one dict, shown as the
        phase asset's definition metadata and again on every materialization (verify_replication)."""
        return {
            "data_zone": self.data.describe(),
            "system_zone": self.system.describe(),
            "expected_data_voters": self.expected_data_voters,
            "expected_data_non_voters": self.expected_data_non_voters,
            "expected_system_voters": self.expected_system_voters,
            "expected_system_non_voters": self.expected_system_non_voters,
            "failures_tolerated": self.failures_tolerated,
        }


def needed_voters(zone_voters: int, cluster_nodes: int) -> int:
    """The voters CockroachDB targets for a range: a line-by-line port of GetNeededVoters
    (cockroachdb/cockroach pkg/kv/kvserver/allocator/allocatorimpl/allocator.go).

    zone_voters is SpanConfig.GetNumVoters(): num_voters, or num_replicas when num_voters is unset. Never more
    voters than nodes, and never an even count unless the zone asked for exactly that count: so 5 on 3 nodes
    targets 3, and 3 on 2 nodes targets 3, which 2 nodes can never hold ("fragile quorum").
    """
    need = min(zone_voters, cluster_nodes)
    if need == zone_voters:
        return need
    if need % 2 == 0:
        need -= 1
    if need < 3:
        need = 3
    if need > zone_voters:
        need = zone_voters
    return need


def needed_non_voters(num_voters: int, zone_non_voters: int, cluster_nodes: int) -> int:
    """The non-voting replicas CockroachDB targets: a port of GetNeededNonVoters (same file). Only nodes
    without a voter can hold one, and never a negative count."""
    need = min(zone_non_voters, cluster_nodes - num_voters)
    return max(need, 0)


PHASES: tuple[Phase, ...] = (
    Phase(
        name="phase0_single_node",
        index=0,
        title="Phase 0: single node",
        nodes=1,
        data=Replication(num_replicas=1, num_voters=1),
        system=Replication(num_replicas=1, num_voters=1),
        sql_files=("00-bootstrap.sql", "05-phase0-writer-user.sql"),
        backup_label="phase0",
        users=("app_rw_01", "app_rw_02"),
        groups=("app_fa", "app_rw"),
        description=(
            "One CockroachDB node holding one copy of every range (num_replicas = 1 for data and system "
            "ranges): the PostgreSQL-like starting point. The app schema and seed data are created, with "
            "the groups app_fa and app_rw and the writer path's rotation users app_rw_01/app_rw_02. No fault tolerance at all: losing the node loses the service."
        ),
    ),
    Phase(
        name="phase1_two_nodes",
        index=1,
        title="Phase 1: two nodes",
        nodes=2,
        data=Replication(num_replicas=2, num_voters=1, pin_voters_to_first_node=True),
        system=Replication(num_replicas=2, num_voters=1, pin_voters_to_first_node=True),
        sql_files=("10-phase1-reader-user.sql",),
        backup_label="phase1",
        users=("app_ro_01", "app_ro_02"),
        groups=("app_ro",),
        description=(
            "A second node joins and every range gets two copies: one voter, one read replica. The voter "
            "(and so the lease) stays on node 1; node 2 holds a non-voting replica. The read-only user's "
            "follower reads are served by the replica nearest the gateway node its connection lands on: node "
            "2's read replica through node 2, node 1's voter through node 1 (crdb-reader reaches both). "
            "CockroachDB refuses two voters (a majority of 2 is 2), so this tolerates "
            "no node failure: losing node 2 leaves writes untouched, losing node 1 makes every range "
            "unavailable."
        ),
    ),
    Phase(
        name="phase2_three_nodes",
        index=2,
        title="Phase 2: three nodes",
        nodes=3,
        data=Replication(num_replicas=3, num_voters=3),
        system=Replication(num_replicas=DEFAULT_SYSTEM_REPLICAS, num_voters=DEFAULT_SYSTEM_REPLICAS),
        sql_files=("20-phase2-rf3.sql",),
        backup_label="phase2",
        description=(
            "A third node joins; every range gets three voters and no read replicas: data ranges ask for 3, "
            "system ranges return to CockroachDB's default of 5 (3 voters on 3 nodes), and the voter pinning "
            "is cleared. The cluster now survives the loss of any one node."
        ),
    ),
)

# The application's SQL login users (two rotation users per path) and the environment variable (or Kubernetes
# Secret key) holding each one's initial password: APP_WRITER_PASSWORD for app_rw_01 (writer path, group
# app_rw), APP_READER_PASSWORD for app_ro_01 (reader path, group app_ro, SELECT only). None: a standby created
# without a password; rotate_credentials gives it its first one.
SQL_USERS: dict[str, str | None] = {user: initial_password_env(user) for path in APP_PATHS for user in path.users}
APP_DATABASE = "app"

PHASES_BY_NAME: dict[str, Phase] = {p.name: p for p in PHASES}
# The grown cluster: the drills run after it, the report's verdict is about it.
LAST_PHASE: Phase = PHASES[-1]


def get_phase(name: str) -> Phase:
    try:
        return PHASES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown phase {name!r}; known phases: {', '.join(PHASES_BY_NAME)}") from None


def previous_phase(phase: Phase) -> Phase | None:
    return PHASES[phase.index - 1] if phase.index > 0 else None
