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

from evolution_pipeline.phases import DEFAULT_SYSTEM_REPLICAS, needed_non_voters, needed_voters
from evolution_pipeline.resources.cluster import (
    ClusterControl,
    ClusterControlResource,
    ClusterStatus,
    NodeStatus,
)
from evolution_pipeline.resources.sql import (
    BackupCheck,
    BackupInfo,
    CrdbSqlResource,
    RangeReplicas,
    SqlError,
    ZoneConfig,
)

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
        "zones": {"RANGE default": _zone(3), **{z: _zone(DEFAULT_SYSTEM_REPLICAS) for z in SYSTEM_ZONES}},
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


def _zone(num_replicas: int, num_voters: int | None = None, voter_constraints: str | None = None) -> dict:
    return {"num_replicas": num_replicas, "num_voters": num_voters, "voter_constraints": voter_constraints}


def zone_targets(zone: dict, nodes: int) -> tuple[int, int]:
    """(voters, non-voters) the allocator targets for a zone on `nodes` nodes."""
    voters = needed_voters(zone["num_voters"] or zone["num_replicas"], nodes)
    non_voters = zone["num_replicas"] - (zone["num_voters"] or zone["num_replicas"])
    return voters, needed_non_voters(voters, non_voters, nodes)


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
                s["ranges"] += [{"id": 100 + i, "scope": "app", "voters": [1], "non_voters": []}
                                for i in range(s["app_ranges"])]

    def ensure_login_user(self, user: str, password: str | None) -> bool:
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

    def set_zone(self, target: str, num_replicas: int, num_voters: int | None = None,
                 voter_constraints: str | None = None) -> None:
        with world(self.world_path) as s:
            _count(s, "set_zone")
            s["zones"][target] = _zone(int(num_replicas), num_voters, voter_constraints)

    def zone_config(self, target: str) -> ZoneConfig | None:
        z = read_world(self.world_path)["zones"].get(target)
        return ZoneConfig(z["num_replicas"], z["num_voters"], z["voter_constraints"]) if z else None

    def first_node_locality(self) -> str:
        return "region=test,zone=test-a"

    def range_replicas(self, scope: str) -> list[RangeReplicas]:
        with world(self.world_path) as s:
            _maybe_fail(s, "range_replicas")
            if not s["ranges"]:
                s["ranges"] = [{"id": i + 1, "scope": "system", "voters": [1], "non_voters": []}
                               for i in range(s["system_ranges"])]
            live = s["ready"]
            for r in s["ranges"]:
                if live:
                    _converge(r, s["zones"]["RANGE default" if r["scope"] == "app" else "RANGE system"], live)
            selected = [r for r in s["ranges"] if scope == "cluster" or r["scope"] == "app"]
            return [RangeReplicas(r["id"], tuple(r["voters"]), tuple(r["non_voters"])) for r in selected]

    def backups_in(self, uri: str) -> list[BackupInfo]:
        return [BackupInfo(p) for p in read_world(self.world_path)["backups"].get(uri, [])]

    def verify_backup(self, uri: str) -> BackupCheck:
        if not read_world(self.world_path)["backups"].get(uri):
            raise SqlError(f"no backups found in {uri}")
        return BackupCheck(objects=4, size_bytes=1024, rows=12000, file_bytes=1024)

    def backup_into(self, uri: str) -> None:
        with world(self.world_path) as s:
            _count(s, "backup_into")
            _maybe_fail(s, "backup_into")
            s["backups"].setdefault(uri, []).append(time.strftime("/%Y/%m/%d-%H%M%S.00"))


def _converge(r: dict, zone: dict, live: int) -> None:
    """One replica change per poll: voters first, then non-voters (the allocator's order of actions)."""
    voters, non_voters = zone_targets(zone, live)
    holders = set(r["voters"]) | set(r["non_voters"])
    free = [n for n in range(1, live + 1) if n not in holders]
    if len(r["voters"]) < voters:
        # Promote a non-voter, else add a voter on a free node.
        r["voters"].append(r["non_voters"].pop() if r["non_voters"] else free[0])
    elif len(r["voters"]) > voters:
        r["voters"].pop()
    elif len(r["non_voters"]) < non_voters and free:
        r["non_voters"].append(free[0])
    elif len(r["non_voters"]) > non_voters:
        r["non_voters"].pop()
