"""Zone copies (tests/doubles/crdb_zones.py Zone.clone / inherit_from / copy_fields) are deep copies, made
without copy.deepcopy, and the range health the metrics stand-in reads every scrape (crdb_sql.py
range_health_by_node, one complete zone per target) is the per-range count done the plain way."""

from __future__ import annotations

import copy

from tests.doubles.crdb_ranges import Range
from tests.doubles.crdb_sql import CrdbSqlStandIn
from tests.doubles.crdb_zones import Zone, parse_constraints, parse_lease_preferences, stock_zones
from tests.doubles.test_crdb_sql import Nodes


def constrained() -> Zone:
    z = Zone(num_replicas=5, num_voters=3, gc_ttlseconds=600, global_reads=False,
             constraints=parse_constraints('{"+region=us-east1": 2, "+region=us-west1": 1}', "constraints"),
             voter_constraints=parse_constraints("[+zone=us-east1-a]", "voter_constraints"),
             lease_preferences=parse_lease_preferences("[[+zone=us-east1-a], [+region=us-east1]]"))
    assert z.constraints and z.voter_constraints and z.lease_preferences
    return z


def test_a_clone_is_a_deep_copy():
    for z in [*stock_zones().values(), constrained(), Zone()]:
        before = copy.deepcopy(z)
        c = z.clone()
        assert c == before and type(c) is Zone and c is not z
        for name in ("constraints", "voter_constraints", "lease_preferences"):
            if z.get(name) is not None:
                assert c.get(name) is not z.get(name), f"{name}: a list of its own"
                c.get(name).clear()
        c.num_replicas = 7
        assert z == before, "changing the clone leaves the original as it was"


def test_what_is_not_frozen_is_still_copied():
    z = Zone(constraints=[["+zone=a"]])  # not a Conjunction: deepcopy's way
    c = z.clone()
    c.constraints[0].append("+zone=b")
    assert z.constraints == [["+zone=a"]]


def test_inherit_and_copy_fields_leave_the_parent_alone():
    parent = constrained()
    child = Zone(num_replicas=3).inherit_from(parent)
    assert child == Zone(num_replicas=3, num_voters=3, gc_ttlseconds=600, global_reads=False,
                         constraints=parent.constraints, voter_constraints=parent.voter_constraints,
                         lease_preferences=parent.lease_preferences)
    assert child.constraints is not parent.constraints
    partial = Zone()
    partial.copy_fields(parent, ["constraints", "lease_preferences"])
    partial.constraints.pop()
    partial.lease_preferences.pop()
    assert parent == constrained()


def plain_range_health_by_node(crdb: CrdbSqlStandIn) -> dict[int, dict[str, int]]:
    """range_health_by_node as written before: allocator(), live() and known_nodes() each asked, and the
    complete zone computed again for every range."""
    alloc, live = crdb.allocator(), set(crdb.live())
    out = {n: {"ranges": 0, "under_replicated": 0, "over_replicated": 0, "unavailable": 0}
           for n in crdb.known_nodes()}
    for r in crdb.ranges:
        counter = r.leaseholder if r.leaseholder in live else next(
            (n for n in r.voters + r.non_voters if n in live), None)
        if counter is None:
            continue
        h = alloc.health(r, crdb.zone_of(r))
        row = out.setdefault(counter, {"ranges": 0, "under_replicated": 0, "over_replicated": 0,
                                       "unavailable": 0})
        row["ranges"] += 1
        row["under_replicated"] += h.under_replicated
        row["over_replicated"] += h.over_replicated
        row["unavailable"] += h.unavailable
    return out


def test_range_health_is_the_plain_per_range_count():
    nodes = Nodes(1)
    crdb = CrdbSqlStandIn(live_nodes=nodes)
    crdb.zones["DATABASE app"] = Zone(num_replicas=5, num_voters=3)
    crdb.ranges += [Range(16 + i, f"/Table/{104 + i}", f"/Table/{105 + i}", "DATABASE app", database="app",
                          voters=[1]) for i in range(3)]
    states = []
    for n, steps in [(1, 0), (3, 1), (3, 5), (6, 2), (6, 20)]:
        nodes.n = n
        for _ in range(steps):
            crdb.step()
        states.append(crdb.range_health_by_node())
        assert states[-1] == plain_range_health_by_node(crdb), (n, steps)
    crdb.kill(1)  # the leaseholder's node: another live replica counts its ranges
    crdb.kill(2)
    assert crdb.range_health_by_node() == plain_range_health_by_node(crdb)
    crdb.zones["RANGE default"].num_replicas = 1  # a zone changed in place between two counts
    assert crdb.range_health_by_node() == plain_range_health_by_node(crdb)
    assert len({str(s) for s in states}) > 1, "the states differ: the comparison saw more than one"
