"""The stand-in world's cluster control, able to take nodes away and bring them back (the drills'
stop_node / restart_node, evolution_pipeline/drills/nodes.py): one node for the node-loss drill, every node of
a zone for the zone-loss drill.

While nodes are away (`held_down` in the world file) the world's ready count is the desired count less them,
and its running nodes are every desired node but them (pipeline_world.live_node_ids), which the CockroachDB
stand-in (its live nodes) and the metrics stand-in (liveness_livenodes, nodes down for Prometheus, range
health) follow on their own. A node not yet started, or already away, is refused (stricter than a real
backend, never more lenient). Knobs in the world file: `restart_after_polls` (status polls a restarted node
needs to be ready again, default 2) and `stuck_down` (restart_node is called but the node never comes back: a
crash loop or a Pending pod).
"""

from __future__ import annotations

from evolution_pipeline.resources.cluster import ClusterControlError, ClusterStatus, NodeStatus
from tests.doubles.pipeline_world import WorldClusterControl, WorldClusterResource, world


def _count(state: dict, name: str) -> None:
    state["calls"][name] = state["calls"].get(name, 0) + 1


def _away(state: dict) -> set[int]:
    return set(state.get("held_down", ())) | set(state.get("starting", ()))


def _settle(state: dict) -> None:
    """Drop empty lists (a world without a drill looks as it did before) and recount the ready nodes."""
    for key in ("held_down", "starting"):
        if key in state and not state[key]:
            state.pop(key)
    if "starting" not in state:
        state.pop("starting_polls", None)
    state["ready"] = state["desired"] - len(_away(state))


class DrillWorldControl(WorldClusterControl):
    def stop_node(self, index: int) -> str:
        with world(self.path) as s:
            _count(s, "stop_node")
            if not 1 <= index <= s["desired"] or s["ready"] + len(_away(s)) != s["desired"] or index in _away(s):
                raise ClusterControlError(
                    f"the stand-in world cannot take node {index} away: {s['desired']} desired, "
                    f"{s['ready']} ready, away {sorted(_away(s))}"
                )
            s.setdefault("held_down", []).append(index)
            _settle(s)
        return f"stand-in node {index} stopped"

    def restart_node(self, index: int) -> str:
        with world(self.path) as s:
            _count(s, "restart_node")
            if index not in s.get("held_down", ()):
                return f"stand-in node {index} already running"
            if not s.get("stuck_down"):
                s["held_down"].remove(index)
                s.setdefault("starting", []).append(index)
                s["starting_polls"] = s.get("restart_after_polls", 2)
                _settle(s)
        return f"stand-in node {index} started"

    def status(self) -> ClusterStatus:
        with world(self.path) as s:  # released before the world's own status(), which locks it again
            if _away(s):
                return self._away_status(s)
        return super().status()

    @staticmethod
    def _away_status(s: dict) -> ClusterStatus:
        """Nodes held away stay away (the world's own status() would make them ready); starting ones come
        back after `restart_after_polls` polls."""
        _count(s, "status")
        if "starting" in s:
            s["starting_polls"] -= 1
            if s["starting_polls"] <= 0:
                s.pop("starting")
        _settle(s)
        held = set(s.get("held_down", ()))
        nodes = tuple(
            NodeStatus(f"node{i}", i not in _away(s),
                       "stopped by the drill" if i in held else "starting" if i in _away(s) else "")
            for i in range(1, s["desired"] + 1)
        )
        return ClusterStatus(s["desired"], s["ready"], True, nodes)


class DrillWorldClusterResource(WorldClusterResource):
    def control(self) -> DrillWorldControl:
        return DrillWorldControl(self.world_path)
