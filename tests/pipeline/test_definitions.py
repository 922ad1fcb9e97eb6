"""The code location's shape: loads with each backend, follows the phase table, and matches its snapshot.

Regenerate the snapshot after an intended change with: UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/pipeline/test_definitions.py
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.phases import PHASES, Replication, needed_non_voters, needed_voters
from evolution_pipeline.resources.sql import ZONE_TARGETS_DATA, ZONE_TARGETS_SYSTEM
from evolution_pipeline.zones import zone_statements

TARGETS = ZONE_TARGETS_DATA + ZONE_TARGETS_SYSTEM

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
REPO = Path(__file__).resolve().parents[2]


def shape(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            # Who answers for it and what it touches (kinds are tags dagster/kind/<kind>), and when it is overdue.
            "owners": list(node.owners),
            "kinds": sorted(k.removeprefix("dagster/kind/") for k in node.tags if k.startswith("dagster/kind/")),
            **({"freshness": repr(node.freshness_policy)} if node.freshness_policy else {}),
        }
    graph_steps, step_ops = {}, {}
    for a in defs.assets or []:
        node_def = getattr(a, "node_def", None)
        if isinstance(node_def, dg.GraphDefinition):
            graph_steps[node_def.name] = [n.name for n in node_def.nodes_in_topological_order]
            # Each phase's own ops (closing over it), under the step names above: unique definitions per job.
            step_ops[node_def.name] = [n.definition.name for n in node_def.nodes_in_topological_order]
    # The steps that evaluate checks, and which checks each evaluates (a multi-asset check: several).
    check_steps = {c.node_def.name: sorted(k.to_user_string() for k in c.check_keys)
                   for c in defs.asset_checks or []}
    jobs = {}
    for name in ("evolve", "rehearse", "rehearsal_report_job"):
        job = defs.resolve_job_def(name)
        jobs[name] = {"tags": dict(job.tags), "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)}
    schedule = defs.resolve_schedule_def("nightly_rehearsal")
    sensors = [defs.resolve_sensor_def(n) for n in ("evolution_run_failure_alert", "rehearsal_report_after_failure")]
    return {
        # How runs hand on state (the instance, not a pod's disk) and who hears of a failed run.
        "io_manager": type(defs.resources["io_manager"]).__name__,
        "sensors": {sensor.name: {"monitored_jobs": sorted(j.name for j in sensor._monitored_jobs or []),
                                  "launches": sorted(t.job_name for t in sensor.targets),
                                  "resources": sorted(sensor.required_resource_keys)} for sensor in sensors},
        "assets": assets,
        "graph_steps": graph_steps,
        "step_ops": step_ops,
        "check_steps": check_steps,
        "jobs": jobs,
        "schedules": {schedule.name: {"job": schedule.job_name, "cron": schedule.cron_schedule,
                                      "timezone": schedule.execution_timezone}},
    }


def test_definitions_match_snapshot(resources, monkeypatch):
    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", "operator")  # the kinds follow the backend
    current = shape(build_definitions(resources))
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_asset_has_owners_and_kinds_and_the_report_goes_overdue(resources):
    graph = build_definitions(resources).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:database-platform"], key
        assert any(t.startswith("dagster/kind/") for t in node.tags), f"{key.to_user_string()} has no kinds"
    report = graph.get(dg.AssetKey(["rehearsal", "rehearsal_report"])).freshness_policy
    # A night plus the longest a rehearse run may take (dagster/max_runtime on the job), then overdue.
    assert report.fail_window.to_timedelta() == dt.timedelta(hours=28)
    assert report.warn_window.to_timedelta() == dt.timedelta(hours=25)
    rehearse_runtime = build_definitions(resources).resolve_job_def("rehearse").tags["dagster/max_runtime"]
    assert report.fail_window.to_timedelta() == dt.timedelta(days=1, seconds=int(rehearse_runtime))


def test_lineage_and_steps_follow_the_phase_table(resources):
    s = shape(build_definitions(resources))
    for prev, phase in itertools.pairwise(PHASES):
        assert s["assets"][phase.name]["deps"] == [prev.name]
    assert s["assets"][PHASES[0].name]["deps"] == []
    assert s["assets"]["rehearsal/" + PHASES[0].name]["deps"] == ["rehearsal/fresh_environment"]
    for phase in PHASES:
        assert s["graph_steps"][phase.name] == ["preflight", "backup", "scale", "apply_sql", "verify_replication"]
        assert len(s["assets"][phase.name]["checks"]) == 6


def test_the_defs_folder_declares_each_concern_and_a_given_schedule_replaces_the_nightly_one(resources):
    """evolution_pipeline/defs/ (load_from_defs_folder) holds everything but the resources; a caller's
    schedule takes the nightly rehearsal's place instead of clashing with it."""
    from evolution_pipeline.definitions import PROJECT_PATH

    folder = dg.load_from_defs_folder(path_within_project=PROJECT_PATH)
    assert not folder.resources  # the caller chooses them (build_definitions)
    assert {s.name for s in folder.schedules} == {"nightly_rehearsal", "credential_rotation"}
    assert {s.name for s in folder.sensors} == {"evolution_run_failure_alert", "rehearsal_report_after_failure"}
    hourly = dg.ScheduleDefinition(name="nightly_rehearsal", job_name="rehearse", cron_schedule="0 * * * *")
    defs = build_definitions(resources, schedule=hourly)
    assert defs.resolve_schedule_def("nightly_rehearsal").cron_schedule == "0 * * * *"
    assert defs.resolve_schedule_def("credential_rotation").job_name == "rotate_credentials"


# Each backend and each shipped evolution file once (a load is a whole interpreter importing Dagster: ~5 s).
@pytest.mark.parametrize("backend, evolution", [("operator", "three-zones"), ("local", "demo")])
def test_the_real_code_location_loads_with_each_backend_and_each_shipped_file(backend, evolution, tmp_path):
    """`dagster definitions validate` on workspace.yaml, as the UI would load it, without any secret set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRDB_", "APP_", "REHEARSAL_"))}
    env.update({"EVOLUTION_CLUSTER_BACKEND": backend, "DAGSTER_HOME": str(tmp_path),
                "EVOLUTION_PLAN": str(REPO / "evolutions" / f"{evolution}.yaml")})
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                         check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


# Loads the code location as Dagster does (defs(), resources from the environment) with each backend, then says
# whether any module of the Kubernetes client got imported.
LOAD_WITH_EACH_BACKEND = """
import os, sys
from evolution_pipeline.definitions import defs
for backend in ("local", "operator"):
    os.environ["EVOLUTION_CLUSTER_BACKEND"] = backend
    defs().resolve_job_def("evolve")
print(sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes"))
"""


def test_loading_the_code_location_never_imports_the_kubernetes_client():
    """Importing the Kubernetes client costs ~1 CPU-s (every API model), paid by each code server and run worker:
    it is imported when the operator backend or the Secret store first makes a client (resources/kube.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRDB_", "APP_", "REHEARSAL_"))}
    out = subprocess.run([sys.executable, "-c", LOAD_WITH_EACH_BACKEND], check=False, cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_unknown_backend_is_a_clear_error(monkeypatch):
    from evolution_pipeline.configuration import cluster_resource
    from evolution_pipeline.environments import LIVE

    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", "nomad")
    with pytest.raises(ValueError, match="use 'operator' or 'local'"):
        cluster_resource(LIVE)


def test_rehearsal_settings_never_default_to_live_ones(monkeypatch):
    from evolution_pipeline.configuration import resources_from_env

    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", "operator")
    r = resources_from_env()
    assert r["rehearsal_cluster"].environment == "rehearsal"
    assert r["rehearsal_cluster"].namespace != r["cluster"].namespace
    assert r["rehearsal_prometheus"].cluster_label != r["prometheus"].cluster_label
    assert r["rehearsal_crdb"].backup_uri != r["crdb"].backup_uri


def test_needed_voters_is_getneededvoters():
    # (zone voters, cluster nodes) -> voters, worked through cockroachdb/cockroach
    # pkg/kv/kvserver/allocator/allocatorimpl/allocator.go GetNeededVoters by hand.
    assert needed_voters(5, 3) == 3   # system ranges on 3 nodes: 3 voters, not under-replicated
    assert needed_voters(3, 1) == 3   # a fresh 1-node cluster with defaults: under-replicated
    assert needed_voters(3, 2) == 3   # 3 on 2 nodes can never converge ("fragile quorum")
    assert needed_voters(5, 2) == 3
    assert needed_voters(5, 4) == 3   # never an even voter count that the zone did not ask for
    assert needed_voters(1, 3) == 1
    assert needed_voters(1, 2) == 1   # phase 1: one voter on two nodes


def test_needed_non_voters_is_getneedednonvoters():
    assert needed_non_voters(1, 1, 2) == 1  # phase 1: the second node holds the read replica
    assert needed_non_voters(1, 1, 1) == 0  # only nodes without a voter can hold one
    assert needed_non_voters(3, 2, 4) == 1
    assert needed_non_voters(3, 0, 3) == 0
    assert needed_non_voters(3, 1, 2) == 0  # never negative


def test_phase_table_follows_the_design():
    rows = [(p.nodes, p.expected_data_voters, p.expected_data_non_voters, p.expected_system_voters,
             p.expected_system_non_voters, p.failures_tolerated) for p in PHASES]
    assert rows == [(1, 1, 0, 1, 0, 0), (2, 1, 1, 1, 1, 0), (3, 3, 0, 3, 0, 1)]
    assert [p.pins_voters for p in PHASES] == [False, True, False]


def test_replication_refuses_impossible_voter_counts():
    with pytest.raises(ValueError, match="num_voters"):
        Replication(num_replicas=1, num_voters=2)
    with pytest.raises(ValueError, match="num_voters"):
        Replication(num_replicas=2, num_voters=0)


def test_zone_statements_come_from_the_phase_table():
    assert zone_statements(PHASES[0]) == [f"ALTER {t} CONFIGURE ZONE USING num_replicas = 1;" for t in TARGETS]
    pinned = zone_statements(PHASES[1], "region=local,zone=local-a")
    assert pinned == [f"ALTER {t} CONFIGURE ZONE USING num_replicas = 2, num_voters = 1, "
                      "voter_constraints = '[+region=local,+zone=local-a]';" for t in TARGETS]
    # Without node 1's locality (docs, asset metadata) a placeholder shows where it goes.
    assert all("'[+region=<node 1 region>,+zone=<node 1 zone>]'" in s for s in zone_statements(PHASES[1]))
    assert zone_statements(PHASES[2]) == [
        "ALTER RANGE default CONFIGURE ZONE USING num_replicas = 3, num_voters = 3, voter_constraints = '[]';",
        *[f"ALTER {t} CONFIGURE ZONE USING num_replicas = 5, num_voters = 5, voter_constraints = '[]';"
          for t in TARGETS[1:]],
    ]


def test_bad_localities_and_placeholders_are_refused():
    from evolution_pipeline.resources.sql import SqlError, zone_sql
    from evolution_pipeline.resources.sql_resource import CrdbSqlResource
    from evolution_pipeline.zones import voter_constraints_for

    with pytest.raises(SqlError, match="key=value"):
        voter_constraints_for("us-east1")
    with pytest.raises(SqlError, match="voter_constraints"):
        zone_sql("RANGE default", 2, 1, "[+region=x',+zone=y]")
    with pytest.raises(SqlError, match="unknown zone target"):
        zone_sql("TABLE users", 1)
    with pytest.raises(SqlError, match="not resolved"):
        CrdbSqlResource(url="postgresql://unused").set_zone("RANGE default", 2, 1, zone_statements(PHASES[1])[0]
                                                             .split("'")[1])


def test_zone_config_parses_raw_config_sql():
    from evolution_pipeline.resources.sql import ZoneConfig, parse_zone_config

    raw = ("ALTER RANGE default CONFIGURE ZONE USING\n\trange_min_bytes = 134217728,\n\tnum_replicas = 2,\n"
           "\tnum_voters = 1,\n\tconstraints = '[]',\n\tvoter_constraints = '[+region=r,+zone=r-a]',\n"
           "\tlease_preferences = '[]'")
    assert parse_zone_config(raw) == ZoneConfig(2, 1, "[+region=r,+zone=r-a]")
    assert parse_zone_config("ALTER RANGE meta CONFIGURE ZONE USING num_replicas = 5") == ZoneConfig(5, None, None)


@pytest.mark.parametrize(("backend", "variable", "live", "rehearsal"), [
    ("local", "LOCAL_CRDB_INSECURE", True, False),
    ("local", "REHEARSAL_LOCAL_CRDB_INSECURE", False, True),
    ("operator", "LOCAL_CRDB_INSECURE", False, False),  # only the local backend can run insecure
])
def test_insecure_flag_follows_the_local_backend(monkeypatch, backend, variable, live, rehearsal):
    from evolution_pipeline.configuration import crdb_resource
    from evolution_pipeline.environments import LIVE, REHEARSAL

    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", backend)
    monkeypatch.delenv("LOCAL_CRDB_INSECURE", raising=False)
    monkeypatch.delenv("REHEARSAL_LOCAL_CRDB_INSECURE", raising=False)
    monkeypatch.setenv(variable, "true")
    assert (crdb_resource(LIVE).insecure, crdb_resource(REHEARSAL).insecure) == (live, rehearsal)


def test_default_backup_destinations_hold_restorable_cluster_backups(monkeypatch):
    from evolution_pipeline.configuration import crdb_resource
    from evolution_pipeline.environments import LIVE, REHEARSAL

    monkeypatch.delenv("CRDB_BACKUP_URI", raising=False)
    monkeypatch.delenv("REHEARSAL_CRDB_BACKUP_URI", raising=False)
    assert crdb_resource(LIVE).backup_uri == "nodelocal://1/crdb-evolution-backups"
    assert crdb_resource(REHEARSAL).backup_uri == "nodelocal://1/crdb-evolution-rehearsal-backups"
