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
    sit in exactly that locality, i.e. on node 1 when each node has its own zone tier."""
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
