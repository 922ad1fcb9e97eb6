"""The node-loss drill's operator backend against pod deletion as the kubelet does it.

`kubectl delete pod` (what stop_node does through the API) does not make a pod vanish: the API server marks it
Terminating (metadata.deletionTimestamp, deletionGracePeriodSeconds) and the kubelet stops it within the
grace period while CockroachDB drains; only then is the pod object gone and the operator makes it again
(tests/doubles/k8s_api.py, citing kubernetes/website pod-lifecycle.md "Termination of Pods"). During the
grace period the pod's Ready condition and its CrdbNode's PodReady still read True in the stand-in, so the
drill must judge the node by deletionTimestamp, not by those conditions. Here the drill's own readiness
judgement (node_loss._backend_ready) runs against that timeline with a short grace period.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from kubernetes import client as k8s_client

from evolution_pipeline.drills import node_loss
from evolution_pipeline.drills import nodes as node_control
from evolution_pipeline.phases import PHASES
from evolution_pipeline.resources.operator import DRILL_RBAC_RULES, REQUIRED_RBAC_RULES
from tests.doubles.k8s_api import NODES, PODS, KubeApiDouble
from tests.pipeline.test_operator_control import control_for, wait_ready

NS, NAME = "crdb-rehearsal", "cockroachdb"
GRACE, RECONCILE, READY = 0.6, 0.2, 0.2


def _condition(obj: dict, kind: str) -> str:
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == kind)


def _until(predicate, timeout: float = 10.0) -> float:
    """Poll until predicate() is true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return time.monotonic()


def test_the_drill_sees_the_node_away_for_the_whole_grace_period_then_back():
    with KubeApiDouble(
        rbac_rules=REQUIRED_RBAC_RULES + DRILL_RBAC_RULES,
        pod_grace_seconds=GRACE,
        reconcile_delay=RECONCILE,
        node_ready_delay=READY,
    ) as api:
        api.add_cluster(NS, NAME, nodes=3)
        control = control_for(api, NS)
        wait_ready(control, 3)
        ids = {n: api.get(NODES, NS, n)["status"]["nodeID"] for n in api.names(NODES, NS)}
        pod = next(name for name, node_id in ids.items() if node_id == 3)
        old_uid = api.get(PODS, NS, pod)["metadata"]["uid"]
        drill = SimpleNamespace(control=control, phase=PHASES[-1])  # what _backend_ready reads

        stopped = time.monotonic()
        node_control.stop_node(control, 3)
        terminating = api.get(PODS, NS, pod)
        # Terminating: still there, marked for deletion, its conditions not (yet) telling.
        assert terminating["metadata"]["deletionTimestamp"]
        assert terminating["metadata"]["deletionGracePeriodSeconds"] == GRACE
        assert _condition(terminating, "Ready") == "True"
        assert _condition(api.get(NODES, NS, pod), "PodReady") == "True"
        assert not node_loss._backend_ready(drill)  # the drill is not fooled by them

        gone = _until(
            lambda: api.get(PODS, NS, pod) is None or api.get(PODS, NS, pod)["metadata"]["uid"] != old_uid
        )
        assert gone - stopped >= GRACE
        assert not node_loss._backend_ready(drill)
        back = _until(lambda: node_loss._backend_ready(drill))
        assert back - stopped >= GRACE + RECONCILE + READY
        again = api.get(PODS, NS, pod)
        assert again["metadata"]["uid"] != old_uid and not again["metadata"].get("deletionTimestamp")
        assert {n: api.get(NODES, NS, n)["status"]["nodeID"] for n in api.names(NODES, NS)} == ids
        print(f"\nnode 3 away {back - stopped:.2f}s (grace {GRACE}s, pod gone after {gone - stopped:.2f}s)")


def test_grace_period_from_delete_options_zero_is_immediate_and_it_may_only_shorten():
    with KubeApiDouble(pod_grace_seconds=30, reconcile_delay=5) as api:
        api.add_cluster(NS, NAME, nodes=2)
        core = k8s_client.CoreV1Api(k8s_client.ApiClient(k8s_client.Configuration(host=api.host)))
        first, second = api.names(PODS, NS)
        deleted = core.delete_namespaced_pod(first, NS)
        assert deleted.metadata.deletion_grace_period_seconds == 30  # the pod's terminationGracePeriodSeconds
        longer = core.delete_namespaced_pod(first, NS, grace_period_seconds=60)
        assert longer.metadata.deletion_grace_period_seconds == 30  # may only be shortened
        core.delete_namespaced_pod(first, NS, grace_period_seconds=0)
        assert api.get(PODS, NS, first) is None  # gone at once; the operator recreates it after 5 s
        core.delete_namespaced_pod(second, NS, body=k8s_client.V1DeleteOptions(grace_period_seconds=0))
        assert api.get(PODS, NS, second) is None
