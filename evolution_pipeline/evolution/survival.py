"""What a phase survives, reasoned the way CockroachDB reasons about it. Pure functions, no I/O.

Nodes: a range stays available while a majority of its voters is up, so it survives
maxFailuresBeforeUnavailability(voters) = ((voters + 1) / 2) - 1 node failures (cockroachdb/cockroach
pkg/sql/region_util.go), voters being what the allocator targets on the phase's nodes (GetNeededVoters).

Zones: a range survives losing a zone when no zone holds a majority of its voters. Where the voters go is the
allocator's choice: among the nodes its constraints allow, it adds each replica where it is most diverse from
the replicas the range already has, diversityAllocateScore = the mean Locality.DiversityScore to them
(pkg/kv/kvserver/allocator/allocatorimpl/allocator_scorer.go; pkg/roachpb/metadata.go DiversityScore: tiers
compared in order, the first differing tier decides). place_voters replays that choice; ties go to the lower
node number (CockroachDB breaks them by range count, which cannot move a voter to a less diverse node).
"""

from __future__ import annotations

from .model import Phase, Replication, locality_tiers, max_failures_before_unavailability, zone_of
from .zonerules import Conjunction, load_constraints


def diversity_score(a: str, b: str) -> float:
    """pkg/roachpb/metadata.go Locality.DiversityScore, line by line."""
    ta, tb = locality_tiers(a), locality_tiers(b)
    length = min(len(ta), len(tb))
    for i in range(length):
        if ta[i][1] != tb[i][1]:
            return (length - i) / length
    if len(ta) != len(tb):
        return 1.0 / (length + 1)
    return 0.0


def _allowed(conjs: list[Conjunction], locality: str) -> bool:
    """Conjunctions that apply to every replica (num_replicas 0) must all hold on the node."""
    tiers = dict(locality_tiers(locality))
    return all(c.matches(tiers) for c in conjs if c.num_replicas == 0)


def place_voters(phase: Phase, r: Replication) -> list[int] | None:
    """The nodes (1-based) the allocator puts a range's voters on in `phase`; None when the zone's voters
    cannot all be placed (too few nodes its constraints allow)."""
    want = r.expected_voters(phase.nodes)
    localities = phase.localities[: phase.nodes]
    if r.pin_voters_to_first_node:
        # The pin is node 1's whole locality: only nodes sharing it (validate.py refuses any) may vote.
        candidates = [i for i, loc in enumerate(localities, 1) if loc == localities[0]]
    else:
        conjs = load_constraints(r.voter_constraints) + load_constraints(r.constraints)
        candidates = [i for i, loc in enumerate(localities, 1) if _allowed(conjs, loc)]
        # Per-replica voter constraints are filled first, each by its own count (allocator: "necessary").
        chosen = _fill_per_replica(load_constraints(r.voter_constraints), candidates, localities)
        if chosen is None:
            return None
        return _greedy(chosen, candidates, localities, want)
    return _greedy([], candidates, localities, want)


def _fill_per_replica(conjs: list[Conjunction], candidates: list[int], localities) -> list[int] | None:
    chosen: list[int] = []
    for conj in (c for c in conjs if c.num_replicas > 0):
        fits = [n for n in candidates if n not in chosen and conj.matches(dict(locality_tiers(localities[n - 1])))]
        picked = _greedy(chosen, fits, localities, len(chosen) + conj.num_replicas)
        if picked is None:
            return None
        chosen = picked
    return chosen


def _greedy(chosen: list[int], candidates: list[int], localities, want: int) -> list[int] | None:
    chosen = list(chosen)
    while len(chosen) < want:
        free = [n for n in candidates if n not in chosen]
        if not free:
            return None
        chosen.append(max(free, key=lambda n: (_allocate_score(localities[n - 1], chosen, localities), -n)))
    return chosen


def _allocate_score(locality: str, chosen: list[int], localities) -> float:
    """diversityAllocateScore: 1.0 for the first replica, else the mean diversity to those placed."""
    if not chosen:
        return 1.0
    return sum(diversity_score(locality, localities[n - 1]) for n in chosen) / len(chosen)


def _ranges(phase: Phase) -> list[tuple[str, Replication]]:
    return [("data", phase.data), ("system", phase.system)]


def nodes_survivable(phase: Phase) -> int:
    """Node failures every data and system range survives (the phase's failures_tolerated)."""
    return phase.failures_tolerated


def zone_losses_survivable(phase: Phase, r: Replication) -> int:
    """How many whole zones a range of zone `r` can lose, the worst zones first, and keep a voter majority."""
    voters = place_voters(phase, r)
    if not voters:
        return 0
    per_zone = sorted((sum(1 for n in voters if zone_of(phase.localities[n - 1]) == z)
                       for z in {zone_of(phase.localities[n - 1]) for n in voters}), reverse=True)
    allowed, lost = max_failures_before_unavailability(len(voters)), 0
    for count, zones in zip(per_zone, range(len(per_zone) + 1)):
        lost += count
        if lost > allowed:
            return zones
    # Every zone holding a voter could go: then nothing is left, so one fewer (never all of them).
    return max(len(per_zone) - 1, 0)


def zone_survivable(phase: Phase, zones: int = 1) -> str | None:
    """None when losing any `zones` zone(s) leaves every data and system range a voter majority, else why not
    (the drills refuse a zone-loss drill on a phase that does not survive one)."""
    if len(phase.zones) <= zones:
        return f"{phase.name} has {len(phase.zones)} zone(s); losing {zones} leaves too few to hold anything"
    for kind, r in _ranges(phase):
        voters = place_voters(phase, r)
        if voters is None:
            return f"{phase.name}: the {kind} ranges' voters cannot all be placed on its nodes"
        if zone_losses_survivable(phase, r) < zones:
            spread = {z: sum(1 for n in voters if zone_of(phase.localities[n - 1]) == z) for z in phase.zones}
            spread_text = ", ".join(f"{z}: {c}" for z, c in spread.items())
            return (f"{phase.name}: the {kind} ranges' {len(voters)} voter(s) spread {spread_text} across zones; "
                    f"losing the {zones} fullest zone(s) leaves no majority of "
                    f"{len(voters) // 2 + 1} (the allocator spreads voters for diversity, "
                    "allocator_scorer.go diversityAllocateScore)")
    return None
