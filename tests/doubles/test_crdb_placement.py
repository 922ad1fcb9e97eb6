"""The stand-in allocator places replicas for locality diversity as CockroachDB's does, and its range health
follows a voter majority on live nodes: a zone's nodes stopped leave every range available when no zone holds
a majority of its voters, and make ranges unavailable when one does (tests/doubles/crdb_ranges.py)."""

from __future__ import annotations

import pytest

from evolution_pipeline.resources.sql import ZONE_TARGETS_DATA, ZONE_TARGETS_SYSTEM, zone_sql
from tests.doubles.crdb_ranges import Allocator, Range, allocate_score, diversity_score
from tests.doubles.crdb_sql import CrdbSqlStandIn
from tests.doubles.test_crdb_sql import Nodes, run


def loc(text: str) -> dict[str, str]:
    return dict(t.split("=", 1) for t in text.split(","))


def zoned(zones: str):
    """Node i (1-based) in zone zones[i - 1] of region us-east1, as the three-zones plan lays them out."""
    return lambda n: f"region=us-east1,zone=us-east1-{zones[n - 1]}"


def grown(zones: str, replicas: int) -> CrdbSqlStandIn:
    """A started stand-in with len(zones) live nodes, every zone at `replicas`, settled."""
    crdb = CrdbSqlStandIn(live_nodes=Nodes(len(zones)), node_locality=zoned(zones), insecure=True).start()
    for target in (*ZONE_TARGETS_DATA, *ZONE_TARGETS_SYSTEM):
        run(crdb, zone_sql(target, replicas, None, None))
    crdb.settle()
    return crdb


def zones_of(crdb: CrdbSqlStandIn, zones: str) -> list[list[str]]:
    return [sorted(zones[n - 1] for n in r["voters"]) for r in crdb.range_state()]


def test_diversity_score_is_cockroachdbs():
    east_a, east_b = loc("region=us-east1,zone=us-east1-a"), loc("region=us-east1,zone=us-east1-b")
    west = loc("region=us-west1,zone=us-west1-a")
    assert diversity_score(east_a, east_a) == 0
    assert diversity_score(east_a, east_b) == 0.5  # first tier equal, second differs: (2 - 1) / 2
    assert diversity_score(east_a, west) == 1.0
    assert diversity_score(loc("region=us-east1"), east_a) == 0.5  # a strict prefix: 1 / (1 + 1)
    assert allocate_score(east_b, []) == 1.0
    assert allocate_score(east_b, [east_a, east_b]) == 0.25


def test_a_voter_goes_to_the_zone_holding_none_not_to_the_lowest_node_id():
    zones = "aabc"
    alloc = Allocator([1, 2, 3, 4], lambda n: loc(zoned(zones)(n)), 4)
    # The old rule (lowest ID first) would have sent the second voter to node 2, in node 1's zone.
    assert alloc.allocate_order([2, 3, 4], existing=[1], non_voters=[]) == [3, 4, 2]
    # Equally diverse: the node holding a non-voter is promoted rather than sent a snapshot.
    assert alloc.allocate_order([2, 3, 4], existing=[1], non_voters=[4]) == [4, 3, 2]


def test_removal_drops_a_voter_sharing_a_zone_first():
    zones = "abca"
    alloc = Allocator([1, 2, 3, 4], lambda n: loc(zoned(zones)(n)), 4)
    r = Range(1, "/Min", "/Max", "RANGE default", voters=[1, 2, 4, 3])
    alloc._remove_voter(r, zone=type("Z", (), {"voter_constraints": None})())
    assert r.voters == [1, 2, 3]  # node 4 shared zone a with the leaseholder; the last-added (3) stays


@pytest.mark.parametrize(("zones", "replicas", "per_zone"), [("abc", 3, [1, 1, 1]), ("abcabc", 5, [2, 2, 1])])
def test_every_range_spreads_over_the_zones(zones, replicas, per_zone):
    crdb = grown(zones, replicas)
    try:
        for voters in zones_of(crdb, zones):
            assert len(voters) == replicas
            assert sorted((voters.count(z) for z in "abc"), reverse=True) == per_zone
    finally:
        crdb.stop()


def test_a_zone_lost_leaves_every_range_available_when_no_zone_holds_a_majority():
    crdb = grown("abcabc", 5)
    try:
        for node in (3, 6):  # zone c
            crdb.kill(node)
        health = crdb.range_health()
        assert health["unavailable"] == 0 and health["under_replicated"] == health["ranges"] == 15
        for node in (3, 6):
            crdb.revive(node)
        assert crdb.range_health()["under_replicated"] == 0
    finally:
        crdb.stop()


def test_a_zone_holding_a_voter_majority_makes_ranges_unavailable_when_lost():
    zones = "abbbbc"  # four of six nodes in zone b: three of five voters land there
    crdb = grown(zones, 5)
    try:
        assert all(v.count("b") == 3 for v in zones_of(crdb, zones))
        for node in (2, 3, 4, 5):
            crdb.kill(node)
        assert crdb.range_health()["unavailable"] == 15
        assert crdb.step() == []  # no quorum: no range can change its own membership
    finally:
        crdb.stop()
