"""Ranges, replicas and the allocator's targets for the CockroachDB SQL stand-in.

The allocator here moves a range ONE replication change at a time towards the targets CockroachDB
computes, with the refusals CockroachDB has. Sources (cockroachdb/cockroach):
- targets: pkg/kv/kvserver/allocator/allocatorimpl/allocator.go GetNeededVoters / GetNeededNonVoters;
- order of actions (add voter > replace dead > remove voter > add non-voter > remove non-voter >
  constraint rebalance): the same file, Allocator.computeAction;
- "avoid up-replicating to fragile quorum": pkg/kv/kvserver/replicate_queue.go (a voter is only added to
  reach an even count when another voter could follow right after; TestReplicateQueueUpReplicateOddVoters);
- promotion of a non-voter when its node receives a voter: replicate_queue.go addOrReplaceVoters
  (ReplicationChangesForPromotion); never two replicas of a range on one node (the model is per node; SHOW
  RANGES maps each replica to one of its node's stores, crdb_statements.range_rows);
- WHICH node receives a replica: locality diversity first (see `diversity_score`, `allocate_order`), then a
  node holding a non-voter for a voter, then the lowest ID; which voter goes: the least diverse one;
- health as the metrics count it: pkg/kv/kvserver/replica_metrics.go calcRangeCounter (under-replicated
  when live voters < GetNeededVoters or live non-voters < GetNeededNonVoters; over-replicated in the
  opposite case; unavailable when the live voters are no majority).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .crdb_zones import Conjunction, Zone


def needed_voters(zone_voters: int, cluster_nodes: int) -> int:
    """allocatorimpl.GetNeededVoters."""
    need = min(zone_voters, cluster_nodes)
    if need == zone_voters:
        return need
    if need % 2 == 0:
        need -= 1
    need = max(need, 3)
    return min(need, zone_voters)


def needed_non_voters(num_voters: int, zone_non_voters: int, cluster_nodes: int) -> int:
    """allocatorimpl.GetNeededNonVoters."""
    return max(min(zone_non_voters, cluster_nodes - num_voters), 0)


# --- locality diversity --------------------------------------------------------------------------------------
# cockroachdb/cockroach pkg/roachpb/metadata.go `Locality.DiversityScore`: tiers compared from the most global
# (region) down, by VALUE (key names ignored); the first differing tier i of `length` compared tiers scores
# (length - i) / length; equal localities score 0; one locality a strict prefix of the other scores
# MaxDiversityScore / (length + 1).
MAX_DIVERSITY_SCORE = 1.0


def diversity_score(a: dict[str, str], b: dict[str, str]) -> float:
    left, right = list(a.values()), list(b.values())
    length = min(len(left), len(right))
    for i in range(length):
        if left[i] != right[i]:
            return (length - i) / length
    if len(left) != len(right):
        return MAX_DIVERSITY_SCORE / (length + 1)
    return 0.0


def allocate_score(candidate: dict[str, str], existing: list[dict[str, str]]) -> float:
    """allocator_scorer.go `diversityAllocateScore`: the mean DiversityScore of the candidate against each
    existing replica's locality; MaxDiversityScore when the range has none."""
    if not existing:
        return MAX_DIVERSITY_SCORE
    return sum(diversity_score(candidate, loc) for loc in existing) / len(existing)


def removal_score(node: int, existing: dict[int, dict[str, str]]) -> float:
    """allocator_scorer.go `diversityRemovalScore`: the mean DiversityScore of one replica against the OTHER
    replicas; the lowest is the first to go (candidateListForRemoval then `worst()`)."""
    others = [loc for n, loc in existing.items() if n != node]
    if not others:
        return MAX_DIVERSITY_SCORE
    return sum(diversity_score(existing[node], loc) for loc in others) / len(others)


@dataclass
class Range:
    range_id: int
    start_key: str
    end_key: str
    zone_target: str  # the zone that governs it before inheritance, e.g. "RANGE meta", "DATABASE app"
    database: str | None = None  # the SQL database whose data it holds
    table: str | None = None
    voters: list[int] = field(default_factory=list)
    non_voters: list[int] = field(default_factory=list)

    @property
    def replicas(self) -> list[int]:
        return sorted(self.voters + self.non_voters)

    @property
    def leaseholder(self) -> int | None:
        # Only voters hold leases (non-voters cannot); we keep the lease on the first voter.
        return self.voters[0] if self.voters else None


@dataclass
class Health:
    under_replicated: bool
    over_replicated: bool
    unavailable: bool


def _conj_ok(conjs: list[Conjunction], locality: dict[str, str], existing: list[dict[str, str]]) -> bool:
    """May a replica go to a node with `locality`, given the localities already holding such replicas?
    All-replica conjunctions (num_replicas 0) bind every replica; per-replica ones must be filled first."""
    if not conjs:
        return True
    for conj in conjs:
        if conj.num_replicas == 0 and not conj.satisfied_by(locality):
            return False
    unmet = [c for c in conjs if c.num_replicas > 0
             and sum(c.satisfied_by(loc) for loc in existing) < c.num_replicas]
    return not unmet or any(c.satisfied_by(locality) for c in unmet)


def _violates(conjs: list[Conjunction], locality: dict[str, str]) -> bool:
    return any(c.num_replicas == 0 and not c.satisfied_by(locality) for c in conjs)


class Allocator:
    """One step of the replicate queue for one range, given the live nodes and their localities."""

    def __init__(self, live: list[int], locality: Callable[[int], dict[str, str]], cluster_nodes: int):
        self.live = live
        self.locality = locality
        # storepool.StorePool.ClusterNodeCount (pkg/kv/kvserver/allocator/storepool/store_pool.go): "the
        # number of nodes that are possible allocation targets. This includes dead nodes, but not
        # decommissioning or decommissioned nodes." Targets use it; only live nodes receive replicas.
        self.cluster_nodes = cluster_nodes

    def health(self, r: Range, zone: Zone) -> Health:
        nodes = self.cluster_nodes
        need_v = needed_voters(zone.voters(), nodes)
        need_nv = needed_non_voters(zone.voters(), zone.non_voters(), nodes)
        live_v = sum(n in self.live for n in r.voters)
        live_nv = sum(n in self.live for n in r.non_voters)
        under = need_v > live_v or need_nv > live_nv
        over = not under and (need_v < live_v or need_nv < live_nv)
        unavailable = live_v < len(r.voters) // 2 + 1
        return Health(under, over, unavailable)

    def step(self, r: Range, zone: Zone) -> str | None:
        """Apply at most one change; return what was done (None: nothing to do or nothing possible)."""
        live_voters = [n for n in r.voters if n in self.live]
        if len(live_voters) < len(r.voters) // 2 + 1:
            return None  # no quorum: the range cannot change its own membership
        nodes = self.cluster_nodes
        need_v = needed_voters(zone.voters(), nodes)
        if len(r.voters) < need_v:
            return self._add_voter(r, zone, need_v)
        dead = [n for n in r.voters if n not in self.live]
        if dead:
            return self._replace_dead_voter(r, zone, dead[0])
        if len(r.voters) > need_v:
            return self._remove_voter(r, zone)
        need_nv = needed_non_voters(len(r.voters), zone.non_voters(), nodes)
        dead_nv = [n for n in r.non_voters if n not in self.live]
        if len(r.non_voters) < need_nv:
            return self._add_non_voter(r, zone)
        if len(r.non_voters) > need_nv:
            gone = dead_nv[0] if dead_nv else r.non_voters[-1]
            r.non_voters.remove(gone)
            return f"r{r.range_id}: removed non-voter n{gone}"
        if dead_nv:  # AllocatorReplaceDeadNonVoter: only when a live node can take it
            added = self._add_non_voter(r, zone)
            if added:
                r.non_voters.remove(dead_nv[0])
            return added
        return self._rebalance_for_constraints(r, zone)

    # candidates -------------------------------------------------------------------------------------------
    def allocate_order(self, candidates: list[int], existing: list[int], non_voters: list[int]) -> list[int]:
        """Best first, as allocator_scorer.go `rankedCandidateListForAllocation` sorts them (candidate.compare:
        valid > necessary > diversityScore > converges/balance > hasNonVoter > range count): constraints are
        already filtered; diversity against `existing` (allocator.go `getReplicasForDiversityCalc`: the
        VOTERS' localities for a voter, every replica's for a non-voter); the stand-in has no load, so
        converges/balance/range count tie; then a node holding a non-voter (promoted rather than sent a new
        snapshot); then the lowest node ID, which is `byScoreAndID`'s deterministic tie-break
        (options.deterministicForTesting) where CockroachDB otherwise picks at random among the best."""
        locs = [self.locality(n) for n in existing]
        # Rounded well inside scoresAlmostEqual's epsilon (1e-10): float noise never breaks a tie.
        scores = {n: round(allocate_score(self.locality(n), locs), 9) for n in candidates}
        return sorted(candidates, key=lambda n: (-scores[n], n not in non_voters, n))

    def _voter_candidates(self, r: Range, zone: Zone, exclude: tuple[int, ...] = (),
                          replacing: int | None = None) -> list[int]:
        """Live nodes that may take a voter, best first. `replacing`: a dead voter is being replaced, and
        replicate_queue.go addOrReplaceVoters hands AllocateVoter the remaining LIVE voters (the replaced one
        dropped), so only their localities count."""
        voters = [n for n in r.voters if n != replacing and (replacing is None or n in self.live)]
        locs = [self.locality(n) for n in voters]
        all_locs = [self.locality(n) for n in r.replicas if n != replacing]
        out = [n for n in self.live if n not in r.voters and n not in exclude
               and _conj_ok(zone.voter_constraints or [], self.locality(n), locs)
               and _conj_ok(zone.constraints or [], self.locality(n), all_locs)]
        return self.allocate_order(out, voters, r.non_voters)

    def _add_voter(self, r: Range, zone: Zone, need_v: int) -> str | None:
        candidates = self._voter_candidates(r, zone)
        if not candidates:
            return None
        target = candidates[0]
        will_have = len(r.voters) + 1
        # replicate_queue.go: only go to an even voter count if the next odd one is reachable.
        if will_have < need_v and will_have % 2 == 0 and not self._voter_candidates(r, zone, exclude=(target,)):
            return None
        if target in r.non_voters:
            r.non_voters.remove(target)
            r.voters.append(target)
            return f"r{r.range_id}: promoted non-voter n{target} to voter"
        r.voters.append(target)
        return f"r{r.range_id}: added voter n{target}"

    def _replace_dead_voter(self, r: Range, zone: Zone, dead: int) -> str | None:
        """AllocatorReplaceDeadVoter: add a live voter in the dead one's place; with no live candidate the
        range waits (purgatory) rather than shrinking."""
        candidates = self._voter_candidates(r, zone, replacing=dead)
        if not candidates:
            return None
        target = candidates[0]
        if target in r.non_voters:
            r.non_voters.remove(target)
        r.voters[r.voters.index(dead)] = target
        return f"r{r.range_id}: replaced dead voter n{dead} with n{target}"

    def _remove_voter(self, r: Range, zone: Zone) -> str:
        vc = zone.voter_constraints or []
        violating = [n for n in r.voters if _violates(vc, self.locality(n))]
        # Invalid (constraint-breaking) replicas go first, then the least diverse (candidateListForRemoval:
        # diversityRemovalScore among the voters, `worst()`); never the leaseholder unless it breaks the
        # constraints (the lease moves first in CockroachDB); among equals the last added.
        gone = violating[-1] if violating else self._least_diverse_voter(r)
        r.voters.remove(gone)
        return f"r{r.range_id}: removed voter n{gone}"

    def _least_diverse_voter(self, r: Range) -> int:
        existing = {n: self.locality(n) for n in r.voters}
        others = r.voters[1:] or r.voters  # the leaseholder (first voter) stays
        scores = {n: round(removal_score(n, existing), 9) for n in others}  # ties as in allocate_order
        worst = min(scores.values())
        return [n for n in others if scores[n] == worst][-1]

    def _add_non_voter(self, r: Range, zone: Zone) -> str | None:
        all_locs = [self.locality(n) for n in r.replicas]
        candidates = [n for n in self.live if n not in r.replicas
                      and _conj_ok(zone.constraints or [], self.locality(n), all_locs)]
        if not candidates:
            return None
        target = self.allocate_order(candidates, r.replicas, [])[0]
        r.non_voters.append(target)
        return f"r{r.range_id}: added non-voter n{target}"

    def _rebalance_for_constraints(self, r: Range, zone: Zone) -> str | None:
        """A voter that breaks voter_constraints swaps roles with a conforming non-voter, or moves."""
        vc = zone.voter_constraints or []
        bad = [n for n in r.voters if _violates(vc, self.locality(n))]
        if not bad:
            return None
        good_nv = [n for n in r.non_voters if not _violates(vc, self.locality(n))]
        if good_nv:
            r.voters[r.voters.index(bad[0])] = good_nv[0]
            r.non_voters[r.non_voters.index(good_nv[0])] = bad[0]
            return f"r{r.range_id}: swapped voter n{bad[0]} with non-voter n{good_nv[0]}"
        others = [n for n in self.live if n not in r.replicas and not _violates(vc, self.locality(n))]
        if not others:
            return None
        r.voters[r.voters.index(bad[0])] = others[0]
        return f"r{r.range_id}: moved voter n{bad[0]} to n{others[0]}"
