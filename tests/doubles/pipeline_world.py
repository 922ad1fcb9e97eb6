"""A stand-in CockroachDB cluster for the pipeline tests, shared through one JSON file.

No CockroachDB can run here. This world models what the ops rely on, following the documented behaviour
(reference/cockroachdb.md): nodes become ready some polls after the desired count changes; zone configs
set num_replicas; every range converges one replica per poll towards the allocator's target
(phases.needed_voters); BACKUP INTO adds a dated subdirectory that SHOW BACKUPS IN lists; users and scripts
are recorded. It is file-backed so that multi-process runs (execute_job, dagster dev) share it, and it
counts every call so tests can assert idempotency (one scale, one backup, users created once).

The doubles subclass the real resources and override only the methods that reach the outside world.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from evolution_pipeline.phases import DEFAULT_SYSTEM_REPLICAS, needed_voters
from evolution_pipeline.resources.cluster import (
    ClusterControl,
    ClusterControlResource,
    ClusterStatus,
    NodeStatus,
)
from evolution_pipeline.resources.sql import BackupInfo, CrdbSqlResource, RangeReplicas, SqlError

SYSTEM_ZONES = ("DATABASE system", "RANGE meta", "RANGE system", "RANGE liveness")


def new_world(path: Path, *, ready_after_polls: int = 1, app_ranges: int = 4, system_ranges: int = 6) -> Path:
    state = {
        "desired": 0,
        "ready": 0,
        "polls_until_ready": 0,
        "ready_after_polls": ready_after_polls,
        "calls": {},
        "database": False,
        # A cluster started with `cockroach start` + `init` has CockroachDB's defaults: 3 / 5.
        "zones": {"RANGE default": 3, **{z: DEFAULT_SYSTEM_REPLICAS for z in SYSTEM_ZONES}},
        "users": {},
        "scripts": [],
        "backups": {},
        "ranges": [],
        "app_ranges": app_ranges,
        "system_ranges": system_ranges,
        "fail": {},
    }
    path.write_text(json.dumps(state))
    return path


@contextmanager
def world(path: str | Path):
    """Read-modify-write the world under an exclusive lock."""
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        state = json.load(f)
        try:
            yield state
        finally:  # an injected failure still consumes its count
            f.seek(0)
            f.truncate()
            json.dump(state, f)


def read_world(path: str | Path) -> dict:
    # Shared lock: world() truncates and rewrites the file, so an unlocked read could see it empty.
    with open(path) as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        return json.load(f)


def _count(state: dict, name: str) -> None:
    state["calls"][name] = state["calls"].get(name, 0) + 1


def _maybe_fail(state: dict, name: str) -> None:
    """Injected failures: fail[name] = N fails the next N calls; fail[name@K] = N only while K nodes are ready."""
    for key in (name, f"{name}@{state['ready']}"):
        remaining = state["fail"].get(key, 0)
        if remaining:
            state["fail"][key] = remaining - 1
            raise SqlError(f"injected failure in {name} with {state['ready']} ready node(s)")


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


class WorldSqlResource(CrdbSqlResource):
    """CrdbSqlResource with the cluster replaced by the world file (nothing is sent anywhere)."""

    world_path: str
    url: str = "postgresql://stand-in"
    replication_poll_seconds: float = 0.05

    def database_exists(self, name: str | None = None) -> bool:
        return read_world(self.world_path)["database"]

    def ensure_database(self) -> None:
        with world(self.world_path) as s:
            _count(s, "ensure_database")
            if not s["database"]:
                s["database"] = True
                s["ranges"] += [{"id": 100 + i, "scope": "app", "voters": 1} for i in range(s["app_ranges"])]

    def ensure_login_user(self, user: str, password: str) -> bool:
        with world(self.world_path) as s:
            created = user not in s["users"]
            if created:
                _count(s, "create_user")
            s["users"][user] = {"password_set": bool(password)}
            return created

    def run_script(self, path) -> int:
        from evolution_pipeline.sqlscript import load_script

        statements = load_script(path)
        with world(self.world_path) as s:
            _maybe_fail(s, "run_script")
            s["scripts"].append(path.name)
        return len(statements)

    def set_zone_replicas(self, target: str, replicas: int) -> None:
        with world(self.world_path) as s:
            s["zones"][target] = int(replicas)

    def zone_replicas(self, target: str) -> int | None:
        return read_world(self.world_path)["zones"].get(target)

    def range_voters(self, scope: str) -> list[RangeReplicas]:
        with world(self.world_path) as s:
            _maybe_fail(s, "range_voters")
            if not s["ranges"]:
                s["ranges"] = [{"id": i + 1, "scope": "system", "voters": 1} for i in range(s["system_ranges"])]
            live = s["ready"]
            for r in s["ranges"]:
                zone = s["zones"]["RANGE default" if r["scope"] == "app" else "RANGE system"]
                target = needed_voters(zone, live) if live else r["voters"]
                if r["voters"] < target:
                    r["voters"] += 1
                elif r["voters"] > target:
                    r["voters"] -= 1
            selected = [r for r in s["ranges"] if scope == "cluster" or r["scope"] == "app"]
            return [RangeReplicas(r["id"], r["voters"]) for r in selected]

    def backups_in(self, uri: str) -> list[BackupInfo]:
        return [BackupInfo(p) for p in read_world(self.world_path)["backups"].get(uri, [])]

    def backup_into(self, uri: str) -> None:
        with world(self.world_path) as s:
            _count(s, "backup_into")
            _maybe_fail(s, "backup_into")
            s["backups"].setdefault(uri, []).append(time.strftime("/%Y/%m/%d-%H%M%S.00"))
