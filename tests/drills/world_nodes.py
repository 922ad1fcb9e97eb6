"""The stand-in world's cluster control, able to take its highest node away and bring it back (the drill's
stop_node / restart_node, evolution_pipeline/drills/nodes.py).

The world (tests/doubles/pipeline_world.py) models nodes 1..ready as live, so only the highest node can be
taken away: asking for another is refused (stricter than a real backend, never more lenient). While a node is
away the world's ready count is one less, which the CockroachDB stand-in (its live nodes) and the metrics
stand-in (liveness_livenodes, node down for Prometheus, range health) follow on their own. Knobs in the world
file: `restart_after_polls` (status polls a restarted node needs to be ready again, default 2) and
`stuck_down` (restart_node is called but the node never comes back: a crash loop or a Pending pod).
"""

from __future__ import annotations

from evolution_pipeline.resources.cluster import ClusterControlError, ClusterStatus, NodeStatus
from tests.doubles.pipeline_world import WorldClusterControl, WorldClusterResource, world


def _count(state: dict, name: str) -> None:
    state["calls"][name] = state["calls"].get(name, 0) + 1


class DrillWorldControl(WorldClusterControl):
    def stop_node(self, index: int) -> str:
        with world(self.path) as s:
            _count(s, "stop_node")
            if index != s["desired"] or s["ready"] != s["desired"]:
                raise ClusterControlError(
                    f"the stand-in world can only take away its highest ready node "
                    f"({s['desired']}), not node {index} (ready {s['ready']})"
                )
            s["held_down"] = index
            s["ready"] = index - 1
        return f"stand-in node {index} stopped"

    def restart_node(self, index: int) -> str:
        with world(self.path) as s:
            _count(s, "restart_node")
            if s.get("held_down") != index:
                return f"stand-in node {index} already running"
            if not s.get("stuck_down"):
                s.pop("held_down")
                s["polls_until_ready"] = s.get("restart_after_polls", 2)
        return f"stand-in node {index} started"

    def status(self) -> ClusterStatus:
        with world(self.path) as s:
            down = s.get("held_down")
            if down is not None:  # held away: the world's own status() would bring it back
                _count(s, "status")
                s["ready"] = down - 1
                nodes = tuple(
                    NodeStatus(f"node{i}", i != down, "stopped by the drill" if i == down else "")
                    for i in range(1, s["desired"] + 1)
                )
                return ClusterStatus(s["desired"], s["ready"], True, nodes)
        return super().status()


class DrillWorldClusterResource(WorldClusterResource):
    def control(self) -> DrillWorldControl:
        return DrillWorldControl(self.world_path)
