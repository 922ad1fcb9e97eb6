"""The API server stand-in places CockroachDB pods as kube-scheduler would and gives them the locality the
operator derives from their worker (tests/doubles/k8s_scheduler.py), driven through the real operator control
and the repository's CrdbCluster manifest."""

from __future__ import annotations

import copy
import random
import time
from collections import Counter

import yaml

from evolution_pipeline.phases import REPO_ROOT
from evolution_pipeline.resources.operator import CLUSTER_MANIFEST, REQUIRED_RBAC_RULES
from tests.doubles.k8s_api import NODES, PODS, KubeApiDouble
from tests.doubles.k8s_scheduler import kind_workers, locality, schedule
from tests.pipeline.test_operator_control import control_for, wait_ready

NS, NAME = "crdb", "cockroachdb"
ZONE = "topology.kubernetes.io/zone"
MANIFEST = next(d for d in yaml.safe_load_all((REPO_ROOT / CLUSTER_MANIFEST).read_text())
                if d and d.get("kind") == "CrdbCluster")


def placement(api: KubeApiDouble) -> dict[str, tuple[str | None, str | None]]:
    """pod -> (worker, locality)."""
    return {p: ((api.get(PODS, NS, p) or {}).get("spec", {}).get("nodeName"), api.worker_locality(NS, p))
            for p in api.names(PODS, NS)}


def test_kind_has_six_workers_two_per_zone_of_one_region():
    workers = kind_workers()
    labels = [w["metadata"]["labels"] for w in workers]
    assert Counter(lab[ZONE] for lab in labels) == {"us-east1-a": 2, "us-east1-b": 2, "us-east1-c": 2}
    assert {lab["topology.kubernetes.io/region"] for lab in labels} == {"us-east1"}
    assert len({lab["kubernetes.io/hostname"] for lab in labels}) == 6


def test_the_manifests_pods_spread_one_then_two_per_zone_each_on_a_worker_of_its_own():
    for seed in range(5):  # whichever tie the scheduler breaks, the spread holds
        with KubeApiDouble(rbac_rules=REQUIRED_RBAC_RULES, workers=kind_workers(), scheduler_seed=seed) as api:
            api.add_cluster(NS, NAME, nodes=1, spec=MANIFEST["spec"])
            control = control_for(api)
            for nodes, per_zone in ((3, [1, 1, 1]), (6, [2, 2, 2])):
                control.scale_to(nodes)
                wait_ready(control, nodes)
                placed = placement(api)
                assert sorted(Counter(loc.split("zone=")[1] for _, loc in placed.values()).values()) == per_zone
                assert len({worker for worker, _ in placed.values()}) == nodes, placed
            assert {loc.split(",")[0] for _, loc in placed.values()} == {"region=us-east1"}


def test_two_nodes_never_share_a_zone_and_a_recreated_pod_returns_to_its_worker():
    with KubeApiDouble(rbac_rules=None, workers=kind_workers(), scheduler_seed=3) as api:
        api.add_cluster(NS, NAME, nodes=2, spec=MANIFEST["spec"])
        control = control_for(api)
        wait_ready(control, 2)
        before = placement(api)
        assert len({loc for _, loc in before.values()}) == 2, before
        pod = next(p for p in before if api.get(NODES, NS, p)["status"]["nodeID"] == 2)
        uid = api.get(PODS, NS, pod)["metadata"]["uid"]
        control.stop_node(2)
        deadline = time.monotonic() + 5
        while ((api.get(PODS, NS, pod) or {}).get("metadata", {}).get("uid") in (None, uid)
               and time.monotonic() < deadline):
            time.sleep(0.02)
        wait_ready(control, 2)
        assert api.get(PODS, NS, pod)["metadata"]["uid"] != uid  # a new pod...
        assert placement(api) == before  # ...on the same worker: its local volume is there


def test_without_a_zone_label_a_pod_stays_pending_and_never_ready():
    workers = copy.deepcopy(kind_workers())
    for w in workers:
        w["metadata"]["labels"].pop(ZONE)  # DoNotSchedule over a key no worker has: no feasible node
    with KubeApiDouble(workers=workers) as api:
        api.add_cluster(NS, NAME, nodes=1, spec=MANIFEST["spec"])  # the operator made the CrdbNode and pod
        control = control_for(api)
        time.sleep(3 * api.node_ready_delay)  # long past the moment a bound pod would be Ready
        status = control.status()
        assert status.desired_nodes == 1 and status.ready_nodes == 0, status.summary()
        pod = api.get(PODS, NS, api.names(PODS, NS)[0])
        assert "nodeName" not in pod["spec"] and pod["status"]["phase"] == "Pending"
        assert {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}.items() <= next(
            c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled").items()


def test_do_not_schedule_counts_only_matching_pods_of_the_namespace():
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "crdb"}}}]
    workers = kind_workers()
    zone_a = [w["metadata"]["name"] for w in workers if w["metadata"]["labels"][ZONE] == "us-east1-a"]

    def pod(name, ns="crdb", app="crdb", node=None):
        return {"metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
                "spec": {"topologySpreadConstraints": spread, **({"nodeName": node} if node else {})}}

    # Zone a holds one matching pod: with maxSkew 1 a second one may only go to b or c...
    placed = [pod("p1", node=zone_a[0])]
    for seed in range(10):
        worker = schedule(pod("new"), placed, workers, random.Random(seed))
        assert worker not in zone_a
    # ...while pods of another app or namespace do not count.
    others = [pod("x", app="other", node=zone_a[0]), pod("y", ns="elsewhere", node=zone_a[1])]
    assert {schedule(pod("new"), others, workers, random.Random(s)) for s in range(30)} & set(zone_a)


def test_locality_follows_the_mappings_in_order_and_leaves_out_a_missing_label():
    labels = {"topology.kubernetes.io/region": "us-east1", ZONE: "us-east1-b", "dc": "dc2"}
    assert locality(labels, None) == "region=us-east1,zone=us-east1-b"  # the operator's default mappings
    mappings = [{"nodeLabel": "dc", "localityLabel": "datacenter"}, {"nodeLabel": ZONE, "localityLabel": "zone"},
                {"nodeLabel": "rack", "localityLabel": "rack"}]
    assert locality(labels, mappings) == "datacenter=dc2,zone=us-east1-b"
