"""Zone configs for a phase, derived from the phase table (replication lives nowhere else).

CockroachDB sets replication through zone configs, not a cluster setting: `RANGE default` for all data,
and the system database plus the meta/system/liveness ranges for system data (default 5 replicas). Each
zone gets ONE statement carrying all the phase's fields, because CockroachDB validates the zone as a whole
(cockroachdb/cockroach pkg/config/zonepb/zone.go ZoneConfig.Validate): num_replicas = 2 is accepted only
together with num_voters, and voter_constraints only together with num_voters.
"""

from __future__ import annotations

from dataclasses import dataclass

from .phases import PHASES, Phase, Replication
from .resources.sql import (
    VOTER_CONSTRAINTS_PLACEHOLDER,
    ZONE_TARGETS_DATA,
    ZONE_TARGETS_SYSTEM,
    SqlError,
    zone_sql,
)

# voter_constraints explicitly empty: the setter of voter_constraints stores the parsed YAML list and marks
# NullVoterConstraintsIsEmpty (cockroachdb/cockroach pkg/sql/set_zone_config.go, supportedZoneConfigOptions),
# so '[]' means "no voter constraints" rather than "inherit", and SHOW ZONE CONFIGURATION prints it back.
NO_VOTER_CONSTRAINTS = "[]"


@dataclass(frozen=True)
class ZoneSetting:
    target: str
    num_replicas: int
    num_voters: int | None  # None: the statement leaves num_voters alone (never set on this cluster)
    voter_constraints: str | None  # None: left alone; "[]": cleared; "[+region=..,+zone=..]": pinned

    def sql(self) -> str:
        return zone_sql(self.target, self.num_replicas, self.num_voters, self.voter_constraints) + ";"


def voter_constraints_for(locality: str) -> str:
    """'region=r,zone=z' (a locality as SHOW RANGES prints it) -> '[+region=r,+zone=z]': every voter must
    sit in a node whose locality has every one of those tiers. That is node 1 only when no other node
    satisfies it too, which nothing in CockroachDB enforces: preflight refuses the phase when another node
    does (pin_clashes), and verify_replication fails at once when a range shows it (shared_pin_ranges)."""
    tiers = [t.strip() for t in locality.split(",") if t.strip()]
    if not tiers or any(t.count("=") != 1 for t in tiers):
        raise SqlError(f"node 1's locality {locality!r} is not of the form key=value[,key=value...]")
    return "[" + ",".join("+" + t for t in tiers) + "]"


def zone_plan(phase: Phase, first_node_locality: str | None = None) -> list[ZoneSetting]:
    """The zone settings of a phase. A phase that pins voters needs node 1's locality; without one (the
    docs, asset metadata) the statements show a placeholder instead."""
    return [_setting(t, phase.data, phase, first_node_locality) for t in ZONE_TARGETS_DATA] + [
        _setting(t, phase.system, phase, first_node_locality) for t in ZONE_TARGETS_SYSTEM
    ]


def zone_statements(phase: Phase, first_node_locality: str | None = None) -> list[str]:
    """The exact statements apply_sql runs, as text, for the docs, the plan and the run log."""
    return [s.sql() for s in zone_plan(phase, first_node_locality)]


def _setting(target: str, r: Replication, phase: Phase, locality: str | None) -> ZoneSetting:
    if not _states_voters(phase):
        # No phase so far has set num_voters: say only num_replicas, as a fresh cluster's zones do.
        return ZoneSetting(target, r.num_replicas, None, None)
    if r.pin_voters_to_first_node:
        constraints = voter_constraints_for(locality) if locality else VOTER_CONSTRAINTS_PLACEHOLDER
    else:
        constraints = NO_VOTER_CONSTRAINTS
    return ZoneSetting(target, r.num_replicas, r.num_voters, constraints)


def _states_voters(phase: Phase) -> bool:
    """Once any phase up to this one sets voters apart from replicas or pins them, every later phase states
    num_voters and voter_constraints explicitly: an explicit num_voters = 1 would otherwise outlive phase 1
    and turn phase 2's extra replicas into non-voters."""
    return any(r.num_voters != r.num_replicas or r.pin_voters_to_first_node
               for p in PHASES[: phase.index + 1] for r in (p.data, p.system))


# --- does the pin to node 1's locality single out node 1? ---------------------------------------------------


def _tiers(locality: str | None) -> frozenset[str]:
    return frozenset(t.strip() for t in (locality or "").split(",") if "=" in t)


def satisfies_pin(locality: str | None, first_node_locality: str) -> bool:
    """Whether a node with `locality` satisfies voter_constraints_for(first_node_locality): a required
    constraint +key=value matches a store when its NODE's locality has that tier (cockroachdb/cockroach
    pkg/roachpb span_config.go StoreMatchesConstraint: `store.Node.Locality.Tiers`), and the conjunction
    needs all of them. A node with extra tiers (a rack below the zone) still satisfies it."""
    want = _tiers(first_node_locality)
    return bool(want) and want <= _tiers(locality)


def pin_clashes(localities: dict[int, str], first_node_id: int = 1) -> dict[int, str]:
    """The nodes other than node 1 (by ID, with their locality) that node 1's voter pin would admit too."""
    first = localities.get(first_node_id)
    if not first:
        return {}
    return {n: loc for n, loc in sorted(localities.items()) if n != first_node_id and satisfies_pin(loc, first)}


def shared_pin_ranges(ranges, first_node_locality: str) -> list:
    """Ranges holding two or more replicas in stores whose nodes satisfy node 1's pin. CockroachDB never puts
    two replicas of one range on one node, so such a range proves that another node shares node 1's
    locality: the pinned voter may then sit on that node instead."""
    return [r for r in ranges
            if sum(satisfies_pin(loc, first_node_locality) for _, loc in r.localities) >= 2]


def clash_advice() -> str:
    return ("give node 1 a locality no other node of the phase has: locally, in the evolution file (the phase's "
            "nodes[0].locality; or remove the local cluster resource's `zones` override); on Kubernetes, run the "
            "CockroachDB pods in distinct topology.kubernetes.io/zone values (the operator's localityMappings "
            "copy them into --locality)")

