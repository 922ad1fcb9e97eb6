"""The two Kubernetes behaviours that decide a CockroachDB node's locality on Kubernetes, for the API server
stand-in (tests/doubles/k8s_api.py): where the scheduler puts a pod, and the --locality the operator derives
from the worker it landed on. NOT kube-scheduler; only the plugins k8s/crdb-cluster.yaml's pods meet.

- Workers: KIND_WORKERS are k8s/kind/kind-config.yaml's workers with its topology labels (six, two per zone of
  us-east1), named as kind names them (<cluster>-worker, <cluster>-worker2, ...) and labelled
  kubernetes.io/hostname=<name> as the kubelet labels every node (kubernetes.io/docs/reference/labels-
  annotations-taints/ "kubernetes.io/hostname"). The control plane is not a candidate: kind taints it
  node-role.kubernetes.io/control-plane:NoSchedule and the CockroachDB pods carry no toleration.
- PodTopologySpread (kubernetes.io/docs/concepts/scheduling-eviction/topology-spread-constraints/; the field
  descriptions of core/v1 TopologySpreadConstraint): a constraint counts the pods of the incoming pod's
  namespace that its labelSelector matches, per value of topologyKey over the nodes that have the key. For
  whenUnsatisfiable=DoNotSchedule a node passes only if (matching pods in its domain + 1) - the global
  minimum <= maxSkew (the global minimum: the fewest matching pods in any eligible domain; minDomains is not
  modelled, the manifest sets none), and a node without the key does not pass. ScheduleAnyway never filters;
  it scores, fewer matching pods in the node's domain scoring higher. Constraints are ANDed.
- Among the nodes with the best score the scheduler picks one at random (kubernetes/kubernetes
  pkg/scheduler/schedule_one.go selectHost: reservoir sampling over the top scores): here a seeded
  random.Random, so a test sees one of the placements a real cluster could produce, reproducibly. No
  feasible node: the pod stays Pending (PodScheduled=False, reason Unschedulable), never Ready.
- A pod made again for the same CrdbNode goes back to its worker: its volume (kind's local-path provisioner)
  is a local PersistentVolume with nodeAffinity to the node it was provisioned on, and a pod using such a
  volume can only be scheduled there (kubernetes.io/docs/concepts/storage/persistent-volumes/#node-affinity).
- Locality: the operator's init container reads the worker's labels and writes --locality from
  spec.template.spec.localityMappings in order, `<localityLabel>=<node label value>` joined by commas
  (helm-charts pkg/upstream/cockroach-operator/api/v1beta1/crdbnode_types.go LocalityMappings, default
  region <- topology.kubernetes.io/region, zone <- topology.kubernetes.io/zone; the example in
  cockroachdb-parent/charts/cockroachdb/values.yaml: "locality=region=us-central1,zone=us-central1-c,dc=dc2").
  A mapping whose label the worker lacks is left out (stricter than assuming a value).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import yaml

KIND_CONFIG = Path(__file__).resolve().parents[2] / "k8s" / "kind" / "kind-config.yaml"
HOSTNAME = "kubernetes.io/hostname"
DEFAULT_MAPPINGS = ({"nodeLabel": "topology.kubernetes.io/region", "localityLabel": "region"},
                    {"nodeLabel": "topology.kubernetes.io/zone", "localityLabel": "zone"})


def kind_workers(config: Path = KIND_CONFIG) -> list[dict]:
    """The kind config's workers as Node objects (metadata.name and metadata.labels only)."""
    doc = yaml.safe_load(config.read_text())
    workers = [n for n in doc["nodes"] if n.get("role") == "worker"]
    out = []
    for i, worker in enumerate(workers, start=1):
        name = f"{doc['name']}-worker{'' if i == 1 else i}"
        out.append({"metadata": {"name": name, "labels": {**(worker.get("labels") or {}), HOSTNAME: name}}})
    return out


def _selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector with matchLabels only (matchExpressions are refused: not modelled)."""
    selector = selector or {}
    if selector.get("matchExpressions"):
        raise NotImplementedError("the scheduler stand-in models matchLabels only")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _domain_counts(constraint: dict, pod: dict, pods: list[dict], workers: list[dict]) -> Counter:
    key = constraint["topologyKey"]
    domains = {w["metadata"]["labels"][key] for w in workers if key in w["metadata"]["labels"]}
    counts = Counter({d: 0 for d in domains})
    by_name = {w["metadata"]["name"]: w["metadata"]["labels"] for w in workers}
    for other in pods:
        meta, spec = other["metadata"], other.get("spec") or {}
        node = spec.get("nodeName")
        if (meta["namespace"] != pod["metadata"]["namespace"] or not node or meta.get("deletionTimestamp")
                or not _selects(constraint.get("labelSelector"), meta.get("labels") or {})):
            continue
        domain = by_name.get(node, {}).get(key)
        if domain in counts:
            counts[domain] += 1
    return counts


def _passes(constraint: dict, counts: Counter, labels: dict) -> bool:
    key = constraint["topologyKey"]
    if key not in labels:
        return False
    return counts[labels[key]] + 1 - min(counts.values()) <= constraint.get("maxSkew", 1)


def schedule(pod: dict, pods: list[dict], workers: list[dict], rng: random.Random) -> str | None:
    """The worker kube-scheduler would bind `pod` to, given the pods already bound; None: unschedulable."""
    constraints = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    counted = [(c, _domain_counts(c, pod, pods, workers)) for c in constraints]
    feasible = [w for w in workers
                if all(_passes(c, n, w["metadata"]["labels"]) for c, n in counted
                       if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule")]
    if not feasible:
        return None

    def score(worker: dict) -> int:
        labels = worker["metadata"]["labels"]
        return -sum(n.get(labels.get(c["topologyKey"]), 0) for c, n in counted
                    if c.get("whenUnsatisfiable") == "ScheduleAnyway")

    best = max(score(w) for w in feasible)
    return rng.choice([w["metadata"]["name"] for w in feasible if score(w) == best])


def locality(worker_labels: dict, mappings: list[dict] | None) -> str:
    """The --locality the operator gives a pod on a worker with these labels."""
    tiers = [f"{m['localityLabel']}={worker_labels[m['nodeLabel']]}" for m in (mappings or DEFAULT_MAPPINGS)
             if m.get("nodeLabel") in worker_labels]
    return ",".join(tiers)
