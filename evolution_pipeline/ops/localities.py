"""preflight's locality check: the cluster's nodes sit where the evolution file says, before anything changes.

Two sources, because the backends differ in who decides a node's locality:
- the local backend starts every node itself, with --locality from the file (planned_localities): compared
  node by node, so an override (the local resource's `zones`) that moves a node is refused by name;
- on Kubernetes the scheduler decides which zone a pod lands in (topologySpreadConstraints only bound the
  skew) and the operator copies the Kubernetes node's labels into --locality: which node is in which zone,
  and the zones' names, are not the file's to choose. So the localities the cluster reports (SHOW CLUSTER
  RANGES replica_localities, one per store) are compared by name where the backend plans them, and by how
  many distinct localities there are otherwise (the zone spread the file's survival claims rest on).
"""

from __future__ import annotations

from ..resources.sql import SqlError
from .common import permanent


def check_localities(control, crdb, phase, current_nodes: int, source: str) -> str:
    """Refuse a phase whose nodes' localities differ from the file's; return what was compared."""
    planned = getattr(control, "planned_localities", lambda _n: None)(phase.nodes)
    if planned:
        for node, locality in sorted(planned.items()):
            want = phase.localities[node - 1]
            if locality != want:
                raise permanent(
                    f"node {node}: {control.describe()} starts it with --locality={locality}, but {source} "
                    f"gives it {want} in {phase.name}. Make them agree (the local backend follows the file "
                    "unless its `zones` setting overrides it), then re-execute.")
    if current_nodes == 0:
        return "planned localities match the file" if planned else "no node runs yet"
    try:
        observed = _store_localities(crdb)
    except SqlError as exc:
        return f"cluster localities not read ({exc}); planned: {'match' if planned else 'not known'}"
    file_now = list(phase.localities[:current_nodes])
    if planned:
        wrong = sorted(set(observed.values()) - set(file_now))
        if wrong:
            stores = [s for s, loc in observed.items() if loc == wrong[0]]
            raise permanent(
                f"store(s) {stores} report locality {wrong[0]}, which no node of {phase.name} has in {source} "
                f"(its nodes: {'; '.join(phase.localities)}). A node was started by hand or with other flags: "
                "restart it with the file's --locality, then re-execute.")
        # Nodes, not stores: a node may run several stores (CockroachDB's node 1 often runs two).
        return f"{current_nodes} node(s) at the file's localities"
    if len(observed) < len(file_now):
        # A node without any replica yet (it just joined) reports no locality: nothing sound to compare.
        return f"{len(observed)} store(s) with replicas for {len(file_now)} node(s); localities not compared"
    # Stores, not nodes: no supported statement maps a store to its node (tests/FIDELITY.md), and a node may
    # run several stores, so nodes per locality cannot be counted; how many distinct localities can.
    have, want = sorted(set(observed.values())), sorted(set(file_now))
    if len(have) != len(want):
        listing = "; ".join(f"s{s}: {loc}" for s, loc in sorted(observed.items()))
        raise permanent(
            f"the cluster's nodes sit in {len(have)} distinct localit{'y' if len(have) == 1 else 'ies'} "
            f"({listing}), but {source}'s first {len(file_now)} node(s) of {phase.name} sit in {len(want)} "
            f"({'; '.join(file_now)}). On Kubernetes the zones come from the nodes' topology.kubernetes.io/zone "
            "labels: give the workers the zones the file needs (k8s/kind/kind-config.yaml), then re-execute.")
    return f"{len(file_now)} node(s) in {len(have)} distinct localities, as in the file"


def _store_localities(crdb) -> dict[int, str]:
    out: dict[int, str] = {}
    for r in crdb.range_replicas("cluster"):
        for store, locality in r.localities:
            if locality:
                out[store] = locality
    return out


