"""The code location's shape: loads with each backend, follows the phase table, and matches its snapshot.

Regenerate the snapshot after an intended change with: UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/pipeline/test_definitions.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.phases import PHASES, needed_voters
from evolution_pipeline.zones import zone_statements

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
        }
    graph_steps = {}
    for a in defs.assets or []:
        node_def = getattr(a, "node_def", None)
        if isinstance(node_def, dg.GraphDefinition):
            graph_steps[node_def.name] = [n.name for n in node_def.nodes_in_topological_order]
    jobs = {}
    for name in ("evolve", "rehearse"):
        job = defs.resolve_job_def(name)
        jobs[name] = {"tags": dict(job.tags), "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)}
    schedule = defs.resolve_schedule_def("nightly_rehearsal")
    return {
        "assets": assets,
        "graph_steps": graph_steps,
        "jobs": jobs,
        "schedules": {schedule.name: {"job": schedule.job_name, "cron": schedule.cron_schedule,
                                      "timezone": schedule.execution_timezone}},
    }


def test_definitions_match_snapshot(resources):
    current = shape(build_definitions(resources))
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_lineage_and_steps_follow_the_phase_table(resources):
    s = shape(build_definitions(resources))
    for prev, phase in zip(PHASES, PHASES[1:]):
        assert s["assets"][phase.name]["deps"] == [prev.name]
    assert s["assets"][PHASES[0].name]["deps"] == []
    assert s["assets"]["rehearsal/" + PHASES[0].name]["deps"] == ["rehearsal/fresh_environment"]
    for phase in PHASES:
        assert s["graph_steps"][phase.name] == ["preflight", "backup", "scale", "apply_sql", "verify_replication"]
        assert len(s["assets"][phase.name]["checks"]) == 5


@pytest.mark.parametrize("backend", ["operator", "local"])
def test_the_real_code_location_loads_with_each_backend(backend, tmp_path):
    """`dagster definitions validate` on workspace.yaml, as the UI would load it, without any secret set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRDB_", "APP_", "REHEARSAL_"))}
    env.update({"EVOLUTION_CLUSTER_BACKEND": backend, "DAGSTER_HOME": str(tmp_path)})
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


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


def test_needed_voters_mirrors_the_allocator():
    assert needed_voters(5, 3) == 3   # system ranges on 3 nodes: 3 voters, not under-replicated
    assert needed_voters(3, 1) == 3   # a fresh 1-node cluster with defaults: under-replicated
    assert needed_voters(5, 2) == 3   # why phase 1 must set system ranges to 2 explicitly
    assert needed_voters(2, 2) == 2   # an even count only because the zone asks for exactly it
    assert needed_voters(5, 4) == 3   # never an even voter count that the zone did not ask for
    assert needed_voters(1, 3) == 1
    for phase in PHASES:
        assert phase.expected_data_replicas == phase.nodes
        assert phase.expected_system_replicas == phase.nodes


def test_zone_statements_come_from_the_phase_table():
    stmts = zone_statements(PHASES[2])
    assert "ALTER RANGE default CONFIGURE ZONE USING num_replicas = 3;" in stmts
    assert "ALTER RANGE liveness CONFIGURE ZONE USING num_replicas = 5;" in stmts
    assert all("= 1;" in s for s in zone_statements(PHASES[0]))
