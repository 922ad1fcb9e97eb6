"""The evolution model: phases, their nodes and localities, their zone configs and what they claim to survive.

An evolution file (evolutions/*.yaml, read by load.py, checked by validate.py) becomes one Evolution. This
module holds only data and the allocator arithmetic CockroachDB itself uses; it imports nothing of the
project but the role model, so every layer above (ops, plan, drills, docs) can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = REPO_ROOT / "sql"

# CockroachDB's own default for system ranges (meta, liveness, system database): 5 replicas
# (cockroachdb/cockroach pkg/config/zonepb/zone.go DefaultSystemZoneConfig).
DEFAULT_SYSTEM_REPLICAS = 5


@dataclass(frozen=True)
class Replication:
    """One zone's replication, as the phase asks for it (the fields of ALTER ... CONFIGURE ZONE USING).

    num_voters == num_replicas means no non-voters. CockroachDB refuses num_replicas = 2 unless num_voters
    is set, and refuses num_voters = 2 (cockroachdb/cockroach pkg/config/zonepb/zone.go ZoneConfig.Validate:
    "at least 3 replicas are required for multi-replica configurations", "at least 3 voting replicas are
    required ..."), hence the demo's phase 1: one voter plus one non-voting replica instead of two voters.
    """

    num_replicas: int
    num_voters: int
    # voter_constraints = node 1's locality (read from the cluster at run time): the one voter, and with it
    # the lease (non-voters cannot hold leases), stays on node 1; the other copies are read replicas.
    pin_voters_to_first_node: bool = False
    # CockroachDB's own text of the fields, as SHOW ZONE CONFIGURATION prints them: '[+region=r]' (every
    # replica) or '{+zone=a: 1, +zone=b: 1}' (per replica); None: the statement leaves the field alone.
    constraints: str | None = None
    voter_constraints: str | None = None  # fixed ones; the run-time pin is pin_voters_to_first_node
    lease_preferences: str | None = None  # '[[+zone=a], [+zone=b]]'

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
        for name in ("constraints", "voter_constraints", "lease_preferences"):
            if getattr(self, name) is not None:
                text += f", {name} = {getattr(self, name)}"
        return text + (", voters pinned to node 1" if self.pin_voters_to_first_node else "")


@dataclass(frozen=True)
class Survives:
    """What a phase claims to survive (the file's `survives:`): any `nodes` node failures, any `zones` whole
    zones lost. 0 when the file claims nothing; validate.py refuses a claim CockroachDB would not honour."""

    nodes: int = 0
    zones: int = 0


def locality_tiers(locality: str) -> tuple[tuple[str, str], ...]:
    """'region=r,zone=z' -> (('region', 'r'), ('zone', 'z')), in order (the order is the hierarchy)."""
    return tuple(tuple(t.strip().split("=", 1)) for t in locality.split(",") if "=" in t)  # type: ignore[misc]


def zone_of(locality: str) -> str:
    """A node's failure domain: its `zone` tier, else its whole locality (one node per domain)."""
    return dict(locality_tiers(locality)).get("zone", locality)


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
    # SQL login users this phase creates: a path's two rotation users (evolution_pipeline/evolution/roles.py).
    # Only the first gets a password, from the environment variable in SQL_USERS, and only when created.
    users: tuple[str, ...] = ()
    # Groups (roles without LOGIN) this phase creates before its SQL file grants them privileges.
    groups: tuple[str, ...] = ()
    # Node i (1-based) starts with --locality=localities[i - 1], e.g. "region=us-east1,zone=us-east1-a".
    localities: tuple[str, ...] = ()
    survives: Survives = field(default_factory=Survives)

    def sql_paths(self) -> list[Path]:
        return [SQL_DIR / f for f in self.sql_files]

    @property
    def zones(self) -> dict[str, tuple[int, ...]]:
        """Zone name -> the node numbers (1-based) in it, in node order."""
        out: dict[str, list[int]] = {}
        for i, locality in enumerate(self.localities, start=1):
            out.setdefault(zone_of(locality), []).append(i)
        return {zone: tuple(nodes) for zone, nodes in out.items()}

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
        return max_failures_before_unavailability(voters)

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


@dataclass(frozen=True)
class Evolution:
    """One evolution file, loaded and validated: its phases in order (grow-only)."""

    name: str
    description: str
    source: str  # the file, as the user named it: every error message starts with it
    phases: tuple[Phase, ...]


def max_failures_before_unavailability(voters: int) -> int:
    """cockroachdb/cockroach pkg/sql/region_util.go maxFailuresBeforeUnavailability: ((n + 1) / 2) - 1."""
    return (voters + 1) // 2 - 1


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
    if need < 3:  # noqa: PLR1730  (kept line by line with the Go source)
        need = 3
    if need > zone_voters:  # noqa: PLR1730
        need = zone_voters
    return need


def needed_non_voters(num_voters: int, zone_non_voters: int, cluster_nodes: int) -> int:
    """The non-voting replicas CockroachDB targets: a port of GetNeededNonVoters (same file). Only nodes
    without a voter can hold one, and never a negative count."""
    need = min(zone_non_voters, cluster_nodes - num_voters)
    return max(need, 0)
