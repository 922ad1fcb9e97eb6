"""The operator backend takes one node away for the node-loss drill: it deletes the pod of the CrdbNode that
runs that CockroachDB node, the operator (the API server stand-in, tests/doubles/k8s_api.py) recreates it with
the same node ID, and the rules it needs are exactly DRILL_RBAC_RULES."""

from __future__ import annotations

import pytest

from evolution_pipeline.drills import nodes as node_control
from evolution_pipeline.resources.cluster import ClusterControlError
from evolution_pipeline.resources.operator import DRILL_RBAC_RULES, REQUIRED_RBAC_RULES
from tests.doubles.k8s_api import NODES, PODS, KubeApiDouble
from tests.pipeline.test_operator_control import control_for, expand, wait_ready

NS, NAME = "crdb-rehearsal", "cockroachdb"


def _node_ids(api) -> dict[str, int]:
    return {n: api.get(NODES, NS, n)["status"]["nodeID"] for n in api.names(NODES, NS)}


def test_deletes_the_pod_of_that_node_and_the_operator_recreates_it():
    with KubeApiDouble(rbac_rules=REQUIRED_RBAC_RULES + DRILL_RBAC_RULES, node_ready_delay=0.3) as api:
        api.add_cluster(NS, NAME, nodes=3)
        control = control_for(api, NS)
        wait_ready(control, 3)
        ids = _node_ids(api)
        pod = next(name for name, node_id in ids.items() if node_id == 3)
        node_control.require_drill_support(control)
        first = len(api.requests)

        assert (
            node_control.stop_node(control, 3)
            == f"pod {NS}/{pod} (node 3) deleted; the operator recreates it"
        )
        assert not control.status().is_ready(3)
        assert "the operator recreates" in node_control.restart_node(control, 3)
        wait_ready(control, 3)
        assert api.get(PODS, NS, pod) is not None
        assert _node_ids(api) == ids  # the store on the volume keeps its node ID
        used = {(r.group, r.resource, r.verb) for r in api.requests[first:]}
        assert ("", "pods", "delete") in used and used <= expand(REQUIRED_RBAC_RULES + DRILL_RBAC_RULES)
        assert api.count("delete", PODS) == 1


def test_node_1_is_refused_before_any_call_and_missing_rbac_names_the_rule():
    with KubeApiDouble(rbac_rules=REQUIRED_RBAC_RULES) as api:
        api.add_cluster(NS, NAME, nodes=3)
        control = control_for(api, NS)
        wait_ready(control, 3)
        before = len(api.requests)
        with pytest.raises(ClusterControlError, match="refusing to delete node 1's pod"):
            control.stop_node(1)
        assert len(api.requests) == before
        with pytest.raises(ClusterControlError, match=r'resources: \["pods"\], verbs: \["delete"\]'):
            control.stop_node(2)
        with pytest.raises(ClusterControlError, match="reports nodeID 7"):
            control.stop_node(7)
