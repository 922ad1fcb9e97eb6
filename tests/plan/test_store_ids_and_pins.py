"""What CockroachDB's source says and the code must not assume otherwise (issue 21), against the wire-level
SQL stand-in whose store IDs differ from its node IDs (node 1: stores 1 and 2; node n > 1: store n + 1):

- SHOW RANGES' replica arrays hold store IDs (pkg/sql/crdb_internal.go, crdbInternalRangesNoLeasesTable);
  verify_replication's pin check and the node-loss drill's majority check must not read them as node IDs;
- a pin to node 1's locality singles out node 1 only if no other node has it: preflight refuses otherwise,
  and verify_replication fails at once instead of waiting out its timeout;
- a cluster created since v23.1 keeps 4 h of MVCC history in RANGE default (gc.ttlseconds = 14400);
- `plan` reads the cluster even when the nodes have no locality, and names what the pinning phase lacks.
"""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.drills.node_loss import _ranges_without_majority
from evolution_pipeline.ops.preflight import check_pin_singles_out_node1
from evolution_pipeline.ops.verify import ranges_off_target
from evolution_pipeline.phases import PHASES
from evolution_pipeline.plan import CHANGE, NOT_READ, build_plan
from evolution_pipeline.resources.cluster import ClusterControl, ClusterControlResource, ClusterStatus
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from evolution_pipeline.zones import zone_statements
from tests.doubles.crdb_sql import CrdbSqlStandIn, default_locality

PHASE0, PHASE1, PHASE2 = PHASES


class Nodes:
    def __init__(self, n: int = 1):
        self.n = n

    def __call__(self) -> int:
        return self.n


def _sql(standin: CrdbSqlStandIn) -> CrdbSqlResource:
    return CrdbSqlResource(url=standin.url, retry_base_seconds=0.01, insecure=True,
                           replication_timeout_seconds=0.0, replication_poll_seconds=0.0)


def _at_phase(standin: CrdbSqlStandIn, nodes: Nodes, phase, sql: CrdbSqlResource) -> None:
    """The cluster after `phase`'s scale and zone statements, settled by the stand-in's allocator."""
    nodes.n = phase.nodes
    sql.ensure_database()
    locality = sql.first_node_locality() if phase.pins_voters else None
    for statement in zone_statements(phase, locality):
        sql.execute(statement)
    standin.settle()


@pytest.fixture
def nodes():
    return Nodes(1)


@pytest.fixture
def standin(nodes):
    with CrdbSqlStandIn(live_nodes=nodes, insecure=True) as s:
        yield s


# --- 1. store IDs are not node IDs ------------------------------------------------------------------------


def test_phase1_pin_holds_when_node1_voters_sit_on_its_second_store(standin, nodes):
    """Node 1 has two stores: half its voters sit on store 2. Read as node IDs, store 2 would be "node 2"
    and the phase would never converge; read through replica_localities, every voter is on node 1."""
    sql = _sql(standin)
    _at_phase(standin, nodes, PHASE1, sql)
    stores = {s for r in sql.range_replicas("cluster") for s in r.voters}
    assert stores == {1, 2}, "the stand-in spreads node 1's replicas over its two stores"
    assert {s for r in sql.range_replicas("cluster") for s in r.non_voters} == {3}  # node 2's store
    assert ranges_off_target(sql, PHASE1) == []


def test_phase1_voter_on_node2_is_off_target_even_when_its_store_id_is_2(nodes):
    """One store per node with node 2's store ID = 2 would hide nothing; here node 2's store is 3 and node
    1's second store is 2, so a voter that moved to node 2 must still be seen as off target."""
    with CrdbSqlStandIn(live_nodes=nodes, insecure=True) as standin:
        sql = _sql(standin)
        _at_phase(standin, nodes, PHASE1, sql)
        r = next(r for r in standin.ranges if r.database is None)
        r.voters, r.non_voters = [2], [1]  # the voter on node 2 (store 3), node 1 a read replica
        standin.kill(1)  # so the stand-in's allocator cannot swap them back while the ranges are read
        off = ranges_off_target(sql, PHASE1)
        assert [o.range.range_id for o in off] == [r.range_id]
        assert "s3 (region=local,zone=local-b)" in str(off[0])


def test_node_loss_majority_check_finds_the_stopped_nodes_stores(standin, nodes):
    """A range with voters on nodes 1 and 3 only loses its majority without node 3. Node 3's store is 4:
    comparing store IDs with the node ID 3 would call the range safe."""
    sql = _sql(standin)
    _at_phase(standin, nodes, PHASE2, sql)
    assert _ranges_without_majority(sql, default_locality(3)) == []
    r = standin.ranges[0]
    r.voters, r.non_voters = [1, 3], []
    standin.kill(2)  # no live node left to add a third voter while the ranges are read
    assert _ranges_without_majority(sql, default_locality(3)) == [r.range_id]
    # Without node 3's locality known, every locality is tried: the same range is caught.
    assert _ranges_without_majority(sql, None) == [r.range_id]


# --- 2. a pin to node 1's locality must single out node 1 -------------------------------------------------


class _Control(ClusterControl):
    def __init__(self, localities: dict[int, str] | None):
        self.localities = localities

    def describe(self) -> str:
        return "test control"

    def desired_nodes(self) -> int:
        return 1

    def set_desired_nodes(self, nodes: int) -> None:
        raise AssertionError("not in these tests")

    def status(self) -> ClusterStatus:
        return ClusterStatus(1, 1, True)

    def planned_localities(self, nodes: int):
        return self.localities


def test_preflight_refuses_a_pin_that_node_2_satisfies_too(standin, nodes):
    shared = {1: "region=local,zone=local-a", 2: "region=local,zone=local-a"}  # a one-zone local list
    with pytest.raises(dg.Failure) as failure:
        check_pin_singles_out_node1(_Control(shared), _sql(standin), PHASE1, current_nodes=1)
    text = failure.value.description
    assert "node 1: region=local,zone=local-a; node 2: region=local,zone=local-a" in text
    assert "node(s) 2 would satisfy it too" in text and "zones" in text and "topology.kubernetes.io/zone" in text
    # A node with an extra tier below the same zone satisfies the pin as well (StoreMatchesConstraint).
    with pytest.raises(dg.Failure):
        check_pin_singles_out_node1(_Control({1: shared[1], 2: shared[1] + ",rack=r2"}), _sql(standin), PHASE1, 1)
    # Distinct zones pass; phases without a pin are not checked.
    ok = check_pin_singles_out_node1(_Control({1: shared[1], 2: "region=local,zone=local-b"}), _sql(standin),
                                     PHASE1, 1)
    assert "region=local,zone=local-a is its own" in ok
    assert check_pin_singles_out_node1(_Control(shared), _sql(standin), PHASE2, 1) == "no voter pin in this phase"


def test_preflight_and_verify_see_a_shared_locality_in_the_cluster():
    """A backend that cannot plan localities (the operator: the pod's Kubernetes zone decides): the
    cluster's replica localities show node 2 in node 1's locality once both run."""
    nodes = Nodes(1)
    def same_zone(node_id: int) -> str:  # two pods in one Kubernetes zone
        return "region=us-east1,zone=us-east1-a"

    with CrdbSqlStandIn(live_nodes=nodes, node_locality=same_zone, insecure=True) as standin:
        sql = _sql(standin)
        _at_phase(standin, nodes, PHASE1, sql)
        with pytest.raises(dg.Failure, match="another node shares node 1's locality region=us-east1,zone=us-east1-a"):
            ranges_off_target(sql, PHASE1)  # at once, not after replication_timeout_seconds
        with pytest.raises(dg.Failure, match="another node already has it"):
            check_pin_singles_out_node1(_Control(None), sql, PHASE1, current_nodes=2)


# --- 4. the GC window ------------------------------------------------------------------------------------


def test_range_default_keeps_four_hours_of_history(standin):
    zone = _sql(standin).execute("SHOW ZONE CONFIGURATION FROM RANGE default")[0]["raw_config_sql"]
    assert "gc.ttlseconds = 14400" in zone


# --- 5. plan without localities -------------------------------------------------------------------------


class _ControlResource(ClusterControlResource):
    def control(self) -> ClusterControl:
        return _Control(None)


def test_plan_reads_the_cluster_without_localities_and_names_what_phase1_lacks(nodes):
    with CrdbSqlStandIn(live_nodes=nodes, node_locality=lambda n: "", insecure=True) as standin:
        sql = _sql(standin)
        plan = build_plan(list(PHASES), environment="live", cluster=_ControlResource(), crdb=sql)
        assert plan.read_error is None
        by_phase = {p.phase: p for p in plan.phases}
        assert all(s.status != NOT_READ for p in plan.phases for s in p.steps)
        pin_steps = [s for s in by_phase[PHASE1.name].steps if s.kind == "zone"]
        assert pin_steps and all(s.status == CHANGE and "node 1 has no locality" in s.summary for s in pin_steps)
        assert all("no locality" not in s.summary for s in by_phase[PHASE2.name].steps)
