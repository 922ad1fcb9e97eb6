"""Re-execute from failure on a persistent instance: only the failed step and those after it run again."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.resources.sql import ZoneConfig, parse_zone_config
from tests.doubles.pipeline_world import read_world

pytestmark = pytest.mark.slow


def _evolve():
    from tests.pipeline.stand_ins import evolve_job

    return evolve_job()


def _executed_steps(instance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return {r.event_log_entry.dagster_event.step_key for r in records}


def test_reexecution_from_failure_resumes_at_verify_replication(stand_in_env, worlds, crdbs, tmp_path):
    """Two reconstructable runs (steps in subprocesses, as Dagster runs them), phases over their 3 s windows: ~20-30 s."""
    crdb = crdbs["live"]
    # Phase 1's verify_replication fails once, with 2 nodes up (XX000: not retryable).
    crdb.fail_with_nodes(2, r"^\s*SHOW RANGES FROM DATABASE", "XX000", "internal error: injected")
    recon = dg.reconstructable(_evolve)
    with dg.instance_for_test() as instance:
        first = dg.execute_job(recon, instance)
        failed = [e.step_key for e in first.all_events if e.is_step_failure]
        assert not first.success, failed
        assert failed == ["phase1_two_nodes.verify_replication"]
        after_failure = read_world(worlds["live"])
        assert after_failure["desired"] == 2 and crdb.count(r"^\s*BACKUP INTO") == 1

        again = dg.execute_job(
            recon, instance,
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        )
        assert again.success, [(e.step_key, e.event_specific_data.error.message[:300]) for e in again.all_events if e.is_step_failure]
        steps = _executed_steps(instance, again.run_id)
        assert "phase1_two_nodes.verify_replication" in steps
        assert not {"phase1_two_nodes.preflight", "phase1_two_nodes.backup", "phase1_two_nodes.scale",
                    "phase1_two_nodes.apply_sql"} & steps
        assert {"phase2_three_nodes.scale", "phase2_three_nodes_checks"} <= steps
        judged = {(e.asset_key.to_user_string(), e.check_name) for e in again.get_asset_check_evaluations()}
        assert ("phase2_three_nodes", "live_nodes_match_phase") in judged

    final = read_world(worlds["live"])
    assert final["desired"] == final["ready"] == 3
    assert final["calls"]["set_desired_nodes"] == 3  # phase 1 was not scaled twice
    assert crdb.count(r"^\s*BACKUP INTO") == 2  # phase 1's backup was not repeated; phase 2 took one
    assert crdb.count(r"^\s*CREATE USER") == 4  # two rotation users per path, each created once
    assert parse_zone_config(crdb.zone("RANGE default")) == ZoneConfig(3, 3, "[]")
