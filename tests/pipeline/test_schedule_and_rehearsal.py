"""The nightly rehearsal: schedule, run config, and the guarded reset of the rehearsal environment only."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.jobs import nightly_rehearsal_schedule
from evolution_pipeline.phases import PHASES
from tests.doubles.pipeline_world import read_world, world


def test_schedule_targets_the_rehearsal_job_with_valid_config(resources):
    defs = build_definitions(resources)
    schedule = defs.resolve_schedule_def("nightly_rehearsal")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.job_name == "rehearse"
    ctx = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 23, 2, 0,
                                                                         tzinfo=dt.timezone.utc))
    requests = schedule.evaluate_tick(ctx).run_requests
    assert len(requests) == 1
    request = requests[0]
    assert request.tags["crdb-evolution/environment"] == "rehearsal"
    job = defs.resolve_job_def("rehearse")
    assert dg.validate_run_config(job, request.run_config) is not None
    # The rehearsal job touches only rehearsal assets, bound only to rehearsal resources.
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"rehearsal/fresh_environment", "rehearsal/phase0_single_node",
                    "rehearsal/phase1_two_nodes", "rehearsal/phase2_three_nodes",
                    # after phase 2: the drills and the report (evolution_pipeline/drills, tested in tests/drills)
                    "rehearsal/node_loss_drill", "rehearsal/backup_restore_drill", "rehearsal/rehearsal_report"}
    assert job.required_resource_keys - {"io_manager"} == {
        "rehearsal_cluster", "rehearsal_crdb", "rehearsal_prometheus", "rehearsal_grafana", "rehearsal_sample_app"}


def test_schedule_cron_and_timezone_are_configurable(monkeypatch):
    monkeypatch.setenv("REHEARSAL_CRON", "30 3 * * 1-5")
    monkeypatch.setenv("REHEARSAL_TIMEZONE", "Europe/Paris")
    schedule = nightly_rehearsal_schedule()
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 3 * * 1-5", "Europe/Paris")


@pytest.mark.slow
def test_rehearsal_resets_only_its_own_environment_then_evolves(resources, worlds, crdbs, bench):
    """The rehearse job's reset and three phases, each judged over its 3 s windows: ~20-30 s."""
    # The rehearsal environment starts from a dirty state: it must be reset to nothing first.
    with world(worlds["rehearsal"]) as s:
        s["desired"] = s["ready"] = 2
    live_before = read_world(worlds["live"])
    job = build_definitions(resources).resolve_job_def("rehearse")
    # The reset and the phases; the drills after phase 2 need doubles of their own (a node that can be taken
    # away, reads AS OF SYSTEM TIME) and run in tests/drills/test_node_loss.py.
    phases = [dg.AssetKey(["rehearsal", name]) for name in ("fresh_environment", *(p.name for p in PHASES))]
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, asset_selection=phases)
    assert result.success
    rehearsal = read_world(worlds["rehearsal"])
    assert rehearsal["calls"]["reset"] == 1
    assert rehearsal["desired"] == rehearsal["ready"] == 3
    assert rehearsal["calls"]["set_desired_nodes"] == 3  # grown 0 -> 1 -> 2 -> 3 after the reset
    assert read_world(worlds["live"]) == live_before  # the live world was never touched
    assert crdbs["live"].statements == []  # nor the live cluster's SQL
    assert crdbs["rehearsal"].count(r"^\s*CREATE USER") == 4  # the recreated cluster got its users again
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 18 and all(c.passed for c in checks)
    assert all('cluster="crdb-test-rehearsal"' in c.metadata["query"].text for c in checks)
    # The reset left the rehearsal app without load: the preflight started it, and it still runs.
    assert bench.apps["rehearsal"].controls()["background"]["running"] is True


def test_reset_refuses_a_resource_configured_as_live(resources, worlds):
    resources = dict(resources)
    resources["rehearsal_cluster"] = resources["cluster"]  # misconfiguration: live resource under the rehearsal key
    job = build_definitions(resources).resolve_job_def("rehearse")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        asset_selection=[dg.AssetKey(["rehearsal", "fresh_environment"])])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "refusing to reset" in failure.step_failure_data.error.message
    assert "reset" not in read_world(worlds["live"])["calls"]


@pytest.mark.parametrize(("backend", "status"), [("operator", "RUNNING"), ("local", "STOPPED")])
def test_schedule_is_on_by_default_only_for_the_operator_backend(monkeypatch, backend, status):
    monkeypatch.delenv("REHEARSAL_SCHEDULE_STATUS", raising=False)
    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", backend)
    assert nightly_rehearsal_schedule().default_status == dg.DefaultScheduleStatus[status]
    monkeypatch.setenv("REHEARSAL_SCHEDULE_STATUS", "running")
    assert nightly_rehearsal_schedule().default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_mistyped_schedule_status_says_which_variable(monkeypatch):
    from evolution_pipeline.jobs import nightly_rehearsal_schedule

    monkeypatch.setenv("REHEARSAL_SCHEDULE_STATUS", "on")
    with pytest.raises(ValueError, match="REHEARSAL_SCHEDULE_STATUS='ON': use RUNNING or STOPPED"):
        nightly_rehearsal_schedule()
