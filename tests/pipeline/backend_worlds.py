"""The bench's world follows a REAL backend: what the local backend's processes or the operator's pods did
becomes the world's ready node count (the metrics stand-ins' live nodes, tests/pipeline/conftest.py) and the
SQL stand-in's live nodes and node localities (tests/pipeline/crdb_stand_in.py).

The pipeline then runs with the product's own cluster resource (resources/local or resources/operator), and
Prometheus' live-node checks and the SQL stand-in's range placement see only what that backend did:
- local: the stand-in `cockroach` nodes' shared membership and liveness (tests/doubles/fake_cockroach_node.py
  fake-cluster.json): a node counts once its liveness record is live, with the --locality it was started with;
- operator: the API server stand-in's CrdbNodes (status.nodeID, PodReady) and their pods (Ready, not
  terminating, bound to a worker): a node's locality is the one the operator derives from its worker's labels
  (tests/doubles/k8s_scheduler.py).

CockroachDB node IDs are the backend's own (join order / the CrdbNode's status.nodeID); the world models nodes
1..ready as live, so the ready count is the longest run of live node IDs from 1.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.doubles.k8s_api import CLUSTER_LABEL, CLUSTERS, NODES, PODS, KubeApiDouble
from tests.doubles.pipeline_world import world


def _contiguous(live: set[int]) -> int:
    n = 0
    while n + 1 in live:
        n += 1
    return n


class BackendWorld:
    """Keeps one environment's world file and SQL stand-in in step with a backend: on every statement the
    stand-in runs (so SQL never sees a stale topology) and every `interval` seconds (for the scrapes)."""

    def __init__(self, world_path: str | Path, crdb, interval: float = 0.05):
        self.world_path, self.crdb, self.interval = str(world_path), crdb, interval
        self.localities: dict[int, str] = {}
        self.ready = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backend-world", daemon=True)

    # what a backend reports: ({node id: locality} of the live nodes, desired node count)
    def observe(self) -> tuple[dict[int, str], int]:
        raise NotImplementedError

    def sync(self) -> int:
        with self._lock:
            live, desired = self.observe()
            self.localities.update(live)
            self.ready = _contiguous(set(live))
            with world(self.world_path) as s:
                s["desired"], s["ready"] = desired, self.ready
            return self.ready

    def locality_of(self, node_id: int) -> str:
        if node_id not in self.localities:
            raise AssertionError(f"the SQL stand-in asked for node {node_id}'s locality; the backend has no such "
                                 f"node (known: {self.localities})")
        return self.localities[node_id]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync()

    def __enter__(self):
        self.sync()
        self.crdb.live_nodes = self.sync
        self.crdb.node_locality = self.locality_of
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class LocalWorld(BackendWorld):
    """The stand-in `cockroach` nodes the local backend started, from their shared membership file."""

    def __init__(self, cluster_dir: Path, world_path, crdb, **kw):
        super().__init__(world_path, crdb, **kw)
        self.state_file = Path(cluster_dir) / "fake-cluster.json"

    def members(self) -> dict:
        """listen address -> {id, locality, live}; empty before the first node is initialised."""
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):  # not written yet, or caught mid-write: the next sync reads it
            return {}
        now = time.time()
        return {addr: {**m, "live": now < state["liveness"].get(str(m["id"]), {}).get("expiration", 0)}
                for addr, m in state["members"].items()}

    def observe(self) -> tuple[dict[int, str], int]:
        members = self.members()
        live = {m["id"]: m["locality"] for m in members.values() if m["live"]}
        return live, len(members)


class OperatorWorld(BackendWorld):
    """The CockroachDB pods of one CrdbCluster in the Kubernetes API stand-in."""

    def __init__(self, api: KubeApiDouble, namespace: str, cluster: str, world_path, crdb, **kw):
        super().__init__(world_path, crdb, **kw)
        self.api, self.namespace, self.cluster = api, namespace, cluster

    def pods(self) -> list[dict]:
        """Each CrdbNode of the cluster with its pod and its locality: {name, node_id, ready, locality, worker}."""
        out = []
        for name in self.api.names(NODES, self.namespace):
            node = self.api.get(NODES, self.namespace, name)
            if node is None or node["metadata"]["labels"].get(CLUSTER_LABEL) != self.cluster:
                continue
            pod = self.api.get(PODS, self.namespace, name) or {}
            conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
            pod_ready = any(c["type"] == "Ready" and c["status"] == "True"
                            for c in (pod.get("status") or {}).get("conditions", []))
            ready = (conditions.get("PodReady") == "True" and pod_ready
                     and not pod.get("metadata", {}).get("deletionTimestamp"))
            out.append({"name": name, "node_id": node["status"].get("nodeID"), "ready": ready,
                        "worker": (pod.get("spec") or {}).get("nodeName"),
                        "locality": self.api.worker_locality(self.namespace, name)})
        return out

    def observe(self) -> tuple[dict[int, str], int]:
        cluster = self.api.get(CLUSTERS, self.namespace, self.cluster)
        desired = cluster["spec"]["regions"][0]["nodes"] if cluster else 0
        live = {p["node_id"]: p["locality"] for p in self.pods() if p["ready"] and p["locality"]}
        return live, desired


class RecordingKubeApi(KubeApiDouble):
    """The API server stand-in, remembering spec.regions[0].nodes after every CrdbCluster change, so a test can
    say that no request ever asked for fewer nodes (a scale-down)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.node_counts: list[int] = []

    def _store(self, resource: str, obj: dict) -> dict:
        if resource == CLUSTERS:
            self.node_counts.append(obj["spec"]["regions"][0]["nodes"])
        return super()._store(resource, obj)
