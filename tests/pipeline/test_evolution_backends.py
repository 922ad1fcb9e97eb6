"""The backends follow the evolution file: the local backend starts the file's nodes with the file's
localities, the operator backend grows to the file's node counts, and preflight's locality check compares
the cluster with the file (by node where the backend places nodes, by shape where the scheduler does)."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.evolution import load_evolution
from evolution_pipeline.evolution.model import REPO_ROOT
from evolution_pipeline.ops.localities import check_localities
from evolution_pipeline.resources.local.control import LocalClusterConfig, LocalClusterControl
from evolution_pipeline.resources.sql import RangeReplicas
from tests.doubles.k8s_api import KubeApiDouble
from tests.pipeline.test_operator_control import LIVE_NS, NAME, REQUIRED_RBAC_RULES, control_for, wait_ready

THREE_ZONES = load_evolution(REPO_ROOT / "evolutions" / "three-zones.yaml", "evolutions/three-zones.yaml")
A, B = THREE_ZONES.phases


def local_control(tmp_path, **overrides) -> LocalClusterControl:
    config = LocalClusterConfig(data_dir=tmp_path, cockroach_bin="cockroach", localities=B.localities,
                                max_nodes=B.nodes, **overrides)
    return LocalClusterControl(config)


def test_the_local_backend_starts_six_nodes_two_per_zone_with_the_files_localities(tmp_path):
    control = local_control(tmp_path)
    flags = [next(a for a in control.start_args(n, "cockroach") if a.startswith("--locality="))
             for n in control.nodes(B.nodes)]
    assert flags == [f"--locality={loc}" for loc in B.localities]
    assert flags[0] == flags[3] == "--locality=region=us-east1,zone=us-east1-a"
    # Six nodes on one machine: each its own ports and store.
    nodes = control.nodes(B.nodes)
    assert len({n.sql_port for n in nodes}) == len({n.store for n in nodes}) == 6
    assert control.planned_localities(A.nodes) == {1: B.localities[0], 2: B.localities[1], 3: B.localities[2]}


class Sql:
    """What check_localities reads from CockroachDB: SHOW CLUSTER RANGES' stores and their localities."""

    def __init__(self, localities: dict[int, str]):
        self.localities = localities

    def range_replicas(self, scope):
        stores = tuple(self.localities)
        return [RangeReplicas(1, stores, (), tuple(self.localities.items()))]


class Planless:
    """The operator backend's answer: Kubernetes decides localities, nothing is planned."""

    def describe(self):
        return "CrdbCluster crdb/cockroachdb"

    def planned_localities(self, nodes):
        return None


def test_a_local_override_that_moves_a_node_is_refused_by_name(tmp_path):
    control = local_control(tmp_path, zones=("us-east1-a",), region="us-east1")
    with pytest.raises(dg.Failure) as exc:
        check_localities(control, Sql({}), B, 0, "evolutions/three-zones.yaml")
    assert ("node 2: " in exc.value.description and "--locality=region=us-east1,zone=us-east1-a" in
            exc.value.description and "gives it region=us-east1,zone=us-east1-b in zones_b_six_nodes"
            in exc.value.description), exc.value.description


def test_the_local_backend_passes_when_the_cluster_is_where_the_file_says(tmp_path):
    control = local_control(tmp_path)
    text = check_localities(control, Sql(dict(enumerate(B.localities, 1))), B, 6, "f.yaml")
    assert text == "6 node(s) at the file's localities"
    # Node 1 runs two stores (store IDs drift from node IDs): still three nodes, as the cluster runs them.
    two_stores = {1: B.localities[0], 2: B.localities[0], 3: B.localities[1], 4: B.localities[2]}
    assert check_localities(control, Sql(two_stores), A, 3, "f.yaml") == "3 node(s) at the file's localities"
    with pytest.raises(dg.Failure, match=r"store\(s\) \[6\] report locality region=us-east1,zone=us-east1-d"):
        check_localities(control, Sql({**dict(enumerate(B.localities, 1)), 6: "region=us-east1,zone=us-east1-d"}),
                         B, 6, "f.yaml")


def test_on_kubernetes_the_zone_spread_is_compared_not_the_names():
    # The scheduler put node 1 in zone c and named the zones after the kind workers: three zones, accepted.
    kind = {1: "region=us-east1,zone=us-east1-c", 2: "region=us-east1,zone=us-east1-a",
            3: "region=us-east1,zone=us-east1-b", 4: "region=us-east1,zone=us-east1-a",
            5: "region=us-east1,zone=us-east1-c", 6: "region=us-east1,zone=us-east1-b"}
    assert check_localities(Planless(), Sql(kind), B, 6, "f.yaml") == (
        "6 node(s) in 3 distinct localities, as in the file")
    # Six nodes in two zones: the spread the zone claim rests on is gone.
    kind |= {1: "region=us-east1,zone=us-east1-a", 5: "region=us-east1,zone=us-east1-a"}
    with pytest.raises(dg.Failure) as exc:
        check_localities(Planless(), Sql(kind), B, 6, "evolutions/three-zones.yaml")
    assert "the cluster's nodes sit in 2 distinct localities" in exc.value.description
    assert "s6: region=us-east1,zone=us-east1-b" in exc.value.description
    assert "evolutions/three-zones.yaml's first 6 node(s) of zones_b_six_nodes sit in 3" in exc.value.description
    # A store without replicas yet (a node that just joined): nothing sound to compare, nothing refused.
    assert "not compared" in check_localities(Planless(), Sql({1: kind[1]}), B, 6, "f.yaml")


def test_the_operator_grows_to_six_nodes_for_three_zones():
    with KubeApiDouble(rbac_rules=REQUIRED_RBAC_RULES) as api:
        api.add_cluster(LIVE_NS, NAME, nodes=1)  # k8s/crdb-cluster.yaml is applied at one node
        control = control_for(api)
        for phase in THREE_ZONES.phases:
            assert control.scale_to(phase.nodes) is True
            ready = wait_ready(control, phase.nodes)
            assert ready.ready_nodes == phase.nodes and len(ready.nodes) == phase.nodes
        assert api.get("crdbclusters", LIVE_NS, NAME)["spec"]["regions"][0]["nodes"] == 6
