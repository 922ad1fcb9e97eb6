"""A rehearsal that fails still writes its report: the report reads the rehearse run from the instance, a
run-failure sensor gives a run that stopped before its report a report-only run, whose verdict check fails
it, and the failure alert links to the report."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from evolution_pipeline import sensors
from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.drills.report_asset import NOT_RUN, drill_figures, run_reasons
from evolution_pipeline.drills.run_record import REPORT_OF_TAG, FailedCheck, RunRecord, reported_run_id
from evolution_pipeline.resources.alerts import AlertResource
from tests.doubles.pipeline_world import read_world, world
from tests.drills.test_node_loss import FAST
from tests.pipeline.stand_ins import replaced

WEBSERVER = "http://dagster.test:3000"
REPORT_PAGE = f"{WEBSERVER}/assets/rehearsal/rehearsal_report"
ALERTS = AlertResource(webserver_url=WEBSERVER + "/")


def test_the_record_names_the_failed_drill_and_what_never_ran():
    record = RunRecord(
        "r1",
        failed_steps={"rehearsal__node_loss_drill": "node-loss drill not started: refusing to stop node 1",
                      "rehearsal__phase1_two_nodes.scale": "scale timed out"},
        failed_checks=(FailedCheck("rehearsal/phase0_single_node", "sample_app_error_budget", "0.2 > 0.01"),
                       FailedCheck("rehearsal/phase0_single_node", "sample_app_latency", "EXCEEDED")),
    )
    loss, restore = drill_figures(record)
    assert not loss.passed and loss.summary == "failed: node-loss drill not started: refusing to stop node 1"
    assert not restore.passed and restore.summary == NOT_RUN
    reasons = run_reasons(record, "sample_app_latency")
    assert "rehearsal__node_loss_drill" not in " ".join(reasons)  # the drill's row says it, once
    assert "step rehearsal__phase1_two_nodes.scale failed: scale timed out" in reasons
    assert "rehearsal/phase0_single_node sample_app_error_budget: 0.2 > 0.01" in reasons
    assert not any("EXCEEDED" in r for r in reasons)  # the latency gate has its own section
    assert [r for r in reasons if r.endswith("not reached")] == [
        "phase0_single_node: not reached", "phase1_two_nodes: not reached", "phase2_three_nodes: not reached"]


def _failed(instance, job, **kwargs):
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return result, run, event


def _context(instance, run, event, **resources):
    return dg.build_run_status_sensor_context(
        sensor_name=sensors.REPORT_SENSOR_NAME, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources=resources or None).for_run_failure()


def _report_after(defs, instance, run, event) -> tuple[dict, dg.ExecuteInProcessResult]:
    """What the daemon does with the sensor's answer: a report-only run tagged with the failed run."""
    request = sensors.build_report_sensor()(_context(instance, run, event))
    assert isinstance(request, dg.RunRequest) and request.run_key == run.run_id
    assert request.tags == {REPORT_OF_TAG: run.run_id}
    report_run, report_run_record, report_failure = _failed(
        instance, defs.resolve_job_def("rehearsal_report_job"), tags=request.tags)
    assert reported_run_id(report_run_record) == run.run_id
    mats = report_run.asset_materializations_for_node("rehearsal__rehearsal_report")
    (verdict,) = report_run.get_asset_check_evaluations()
    assert verdict.check_name == "rehearsal_verdict" and not verdict.passed
    # The alert for the report run links to the report too.
    payload = sensors.failure_payload(_context(instance, report_run_record, report_failure), ALERTS)
    assert payload["report_url"] == REPORT_PAGE and REPORT_PAGE in payload["text"]
    return mats[0].metadata, report_run


@pytest.mark.slow
def test_a_drill_that_cannot_start_still_ends_with_a_report_naming_its_error(resources, worlds, crdbs):
    """The whole rehearse job (~30-80 s on the bench: three phases with their checks) up to a node-loss drill
    that refuses to start (node 1 is never stopped), which stops the run before the restore drill and the
    report: the one end-to-end proof that the night with something to tell has a report."""
    with world(worlds["rehearsal"]) as s:
        s["ready_after_polls"] = 100
    defs = build_definitions(resources)
    config = {"ops": {"rehearsal__node_loss_drill": {"config": {**FAST, "node": 1}}}}
    started = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:
        result, run, event = _failed(instance, defs.resolve_job_def("rehearse"), run_config=config)
        rehearse_seconds = time.monotonic() - started
        assert not result.asset_materializations_for_node("rehearsal__rehearsal_report")
        alert = sensors.failure_payload(_context(instance, run, event), ALERTS)
        assert alert["report_url"] == REPORT_PAGE and f"Rehearsal report: {REPORT_PAGE}" in alert["text"]
        meta, _ = _report_after(defs, instance, run, event)
        # Once per failed run: the daemon dedupes on the run key; a run the daemon retries is not reported.
        retried = instance.get_run_by_id(run.run_id).with_tags({**run.tags, sensors.WILL_RETRY_TAG: "true"})
        assert isinstance(sensors.report_request(retried, instance), dg.SkipReason)
    print(f"\nrehearse up to the refused drill: {rehearse_seconds:.1f}s; report run "
          f"{time.monotonic() - started - rehearse_seconds:.1f}s")
    verdict = meta["verdict"].value
    assert meta["verdict_pass"].value == 0 and meta["rehearse_run"].value == run.run_id
    assert "node_loss_drill: failed: node-loss drill not started: refusing to stop node 1" in verdict
    assert f"backup_restore_drill: {NOT_RUN}" in verdict
    assert "not reached" not in verdict  # every phase ran and is in the table
    md = meta["report"].value
    assert "## Rehearsal: FAIL" in md and "| phase2_three_nodes | 3 |" in md
    assert "### phase2_three_nodes: app latency pass" in md
    assert "stop_node" not in read_world(worlds["rehearsal"])["calls"]  # refused before anything stopped


@pytest.mark.slow
def test_a_failed_phase_check_still_gets_a_report(resources, worlds, crdbs):
    """A rehearse run whose first phase fails a blocking check (an error budget no ratio can meet: -1) and
    stops there (~15-25 s: one phase, its minimal 12 s window); the report-only run tells it: phase 0's
    figures and the failed check, the later phases not reached, the drills never run."""
    resources = {**resources,
                 "rehearsal_prometheus": replaced(resources["rehearsal_prometheus"], app_error_budget=-1.0)}
    defs = build_definitions(resources)
    started = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:
        _, run, event = _failed(instance, defs.resolve_job_def("rehearse"))
        print(f"\nrehearse up to the failed phase check: {time.monotonic() - started:.1f}s")
        meta, _ = _report_after(defs, instance, run, event)
    verdict = meta["verdict"].value
    assert "rehearsal/phase0_single_node sample_app_error_budget: sample_app_error_budget FAILED" in verdict
    assert "phase1_two_nodes: not reached" in verdict and "phase2_three_nodes: not reached" in verdict
    assert f"node_loss_drill: {NOT_RUN}" in verdict
    assert "| phase0_single_node | 1 |" in meta["report"].value
    assert "phase1_two_nodes |" not in meta["report"].value

