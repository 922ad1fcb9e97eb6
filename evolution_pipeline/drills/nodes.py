"""Taking one node away and bringing it back, through whatever backend runs the cluster.

A backend that can drill implements two methods on its ClusterControl:
- `stop_node(index) -> str`: local backend: terminate node <index>'s process (SIGTERM drains it);
  operator backend: delete the pod of CrdbNode <index> (the operator recreates it).
- `restart_node(index) -> str`: local backend: start the process again; operator backend: nothing to do but
  say so (the operator already recreates the pod). Idempotent: a node already running is left alone.
Both return what they did, for the run log. They are looked up here, so a backend without them fails the drill
with one clear sentence instead of an AttributeError.
"""

from __future__ import annotations

from ..resources.cluster import ClusterControl, ClusterControlError

# Node 1 is never taken away: it is the node `cockroach init` ran against, the backups' destination
# (nodelocal://1/...), and in phase 1's design the home of every voter.
PROTECTED_NODE = 1


def check_node(index: int, nodes: int) -> None:
    if index == PROTECTED_NODE:
        raise ClusterControlError(
            f"refusing to stop node {PROTECTED_NODE}: it holds the backups (nodelocal://1) and "
            "initialised the cluster; choose another node (drill config `node`)"
        )
    if not PROTECTED_NODE < index <= nodes:
        raise ClusterControlError(f"node {index} is not one of nodes 2..{nodes} of this phase")


def _method(control: ClusterControl, name: str):
    method = getattr(control, name, None)
    if method is None:
        raise ClusterControlError(
            f"{control.describe()} cannot take a single node away ({type(control).__name__} has "
            f"no {name}()): the node-loss drill needs a backend that implements stop_node and "
            "restart_node (see evolution_pipeline/drills/nodes.py)"
        )
    return method


def require_drill_support(control: ClusterControl) -> None:
    for name in ("stop_node", "restart_node"):
        _method(control, name)


def stop_node(control: ClusterControl, index: int) -> str:
    return str(_method(control, "stop_node")(index))


def restart_node(control: ClusterControl, index: int) -> str:
    return str(_method(control, "restart_node")(index))
