"""The stand-in cluster control for the pipeline tests, shared through one JSON file.

No Kubernetes and no CockroachDB processes run here. The world holds what a cluster control reports: the
desired node count and the nodes that became ready some polls after it changed; it counts every call, so
tests can assert idempotency (one scale per phase), and a rehearsal reset starts it anew. It is file-backed
so that multi-process runs (execute_job, dagster dev) share it. Everything SQL (zones, ranges, users,
backups) lives in the wire-level CockroachDB stand-in (tests/doubles/crdb_sql.py), whose live nodes are
this world's ready count (tests/pipeline/crdb_stand_in.py).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from evolution_pipeline.resources.cluster import (
    ClusterControl,
    ClusterControlResource,
    ClusterStatus,
    NodeStatus,
)


def new_world(path: Path, *, ready_after_polls: int = 1) -> Path:
    state = {
        "desired": 0,
        "ready": 0,
        "polls_until_ready": 0,
        "ready_after_polls": ready_after_polls,
        "calls": {},
    }
    path.write_text(json.dumps(state))
    return path


@contextmanager
def world(path: str | Path):
    """Read-modify-write the world under an exclusive lock."""
    with open(path, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        state = json.loads(f.read())
        try:
            yield state
        finally:
            # Overwritten in place, then cut to the new length: the bytes json.dump wrote after truncate(0),
            # without ext4's truncate-to-zero-then-rewrite handling (auto_da_alloc starts the write-back at
            # close), which made each write ~5x the CPU of the rest. Binary: json.dumps is ASCII, and the
            # text layer cost more than the JSON.
            data = json.dumps(state).encode()
            f.seek(0)
            f.write(data)
            f.truncate()


def read_world(path: str | Path) -> dict:
    # Shared lock: world() rewrites the file in place, so an unlocked read could see it half written.
    # No cache: the bytes must be read under the lock anyway, and parsing them (~5 µs) costs less than the
    # copy a cached dict would need for callers that change what they get.
    with open(path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        return json.loads(f.read())


def live_node_ids(state: dict) -> list[int]:
    """The IDs of the nodes that run: 1..ready, unless a drill holds some away (tests/drills/world_nodes.py
    `held_down`, and `starting` while they come back), in which case every desired node but those."""
    away = set(state.get("held_down", ())) | set(state.get("starting", ()))
    if away:
        return [n for n in range(1, state["desired"] + 1) if n not in away]
    return list(range(1, state["ready"] + 1))


def _count(state: dict, name: str) -> None:
    state["calls"][name] = state["calls"].get(name, 0) + 1


class WorldClusterControl(ClusterControl):
    def __init__(self, path: str):
        self.path = path

    def describe(self) -> str:
        return "stand-in cluster"

    def desired_nodes(self) -> int:
        return read_world(self.path)["desired"]

    def set_desired_nodes(self, nodes: int) -> None:
        with world(self.path) as s:
            _count(s, "set_desired_nodes")
            s["desired"] = nodes
            s["polls_until_ready"] = s["ready_after_polls"]

    def status(self) -> ClusterStatus:
        with world(self.path) as s:
            _count(s, "status")
            if s["ready"] != s["desired"]:
                if s["polls_until_ready"] > 0:
                    s["polls_until_ready"] -= 1
                else:
                    s["ready"] = s["desired"]
            nodes = tuple(NodeStatus(f"node{i + 1}", i < s["ready"]) for i in range(s["desired"]))
            return ClusterStatus(s["desired"], s["ready"], True, nodes)

    def reset_rehearsal_environment(self) -> str:
        with world(self.path) as s:
            _count(s, "reset")
            fresh = json.loads(new_world(Path(self.path + ".tmp")).read_text())
            os.unlink(self.path + ".tmp")
            fresh["calls"] = s["calls"]
            fresh["ready_after_polls"] = s["ready_after_polls"]
            s.clear()
            s.update(fresh)
        return "stand-in rehearsal cluster recreated"


class WorldClusterResource(ClusterControlResource):
    world_path: str

    def control(self) -> ClusterControl:
        return WorldClusterControl(self.world_path)
