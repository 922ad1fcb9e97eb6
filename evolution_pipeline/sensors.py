"""Someone is told when any run of this code location fails: a run-failure sensor.

It watches every job of the code location, the ad-hoc asset runs a presenter starts from the UI included:
with no monitored_jobs, a run status sensor matches every run whose origin is its own code location and
repository (dagster-io/dagster python_modules/dagster/dagster/_core/definitions/run_status_sensor_definition.py:
"if monitored_jobs: ... else: job_match = True" under the same location/repository test), which covers
`evolve`, `rehearse`, the rotation jobs and `__ASSET_JOB`; monitor_all_code_locations would also watch other
code locations, which are not ours to report.

Where the message goes is the `alerts` resource (resources/alerts.py): Slack, a webhook, or the sensor's log.
A failed rehearsal's message links to the rehearsal report (DAGSTER_WEBSERVER_URL), which is written anyway:

A second sensor, `rehearsal_report_after_failure`, watches `rehearse` only: a rehearse run that failed before
its report (a failed phase check or drill skips every step after it) gets a report-only run
(`rehearsal_report_job`) that reads the failed run from the instance; once per failed run (run key = its id,
deduplicated by the sensor daemon: dagster _daemon/sensor.py, RUN_KEY_TAG), not for a run the daemon will
retry (tag dagster/will_retry=true, set with the failure: _core/instance/methods/event_methods.py; the retry,
a re-execution, is reported with its parents), nor for one whose report was written (it failed on its verdict).
"""

import dagster as dg

from .drills.report import REPORT_NAME
from .drills.run_record import REPORT_OF_TAG
from .environments import ENVIRONMENT_TAG, REHEARSAL
from .jobs import REPORT_JOB_TAG, rehearsal_report_job, rehearse
from .resources.alerts import AlertResource

SENSOR_NAME = "evolution_run_failure_alert"
REPORT_SENSOR_NAME = "rehearsal_report_after_failure"
RESOURCE_KEY = "alerts"
REPORT_KEY = REHEARSAL.asset_key(REPORT_NAME)
WILL_RETRY_TAG = "dagster/will_retry"


def report_url(run: dg.DagsterRun, alerts: AlertResource) -> str:
    """The rehearsal report's page for a rehearse run or a report-only run; '' for any other run."""
    if run.job_name not in (rehearse.name, rehearsal_report_job.name):
        return ""
    return alerts.asset_url(REPORT_KEY.path)


def failure_payload(context: dg.RunFailureSensorContext, alerts: AlertResource) -> dict:
    run = context.dagster_run
    failed = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    error = context.failure_event.message or "run failed"
    run_url = alerts.run_url(run.run_id)
    env_name = run.tags.get(ENVIRONMENT_TAG) or run.tags.get(REPORT_JOB_TAG, "?")
    report = report_url(run, alerts)
    text = (
        f":rotating_light: `{run.job_name}` ({env_name}) failed: run {run.run_id[:8]}"
        + (f", failed steps: {', '.join(failed)}" if failed else "")
        + f". {error}"
        + (f" {run_url}" if run_url else "")
        + (f" Rehearsal report: {report}" if report else "")
    )
    return {
        "text": text,
        "job": run.job_name,
        "run_id": run.run_id,
        "environment": env_name,
        "error": error,
        "failed_steps": failed,
        "run_url": run_url,
        "report_url": report,
    }


def build_failure_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Tells someone when any run of this code location fails (evolve, rehearse, rotations, "
        "ad-hoc materializations): Slack (SLACK_BOT_TOKEN + EVOLUTION_SLACK_CHANNEL), else a webhook "
        "(EVOLUTION_ALERT_WEBHOOK_URL), else the sensor's log.",
    )
    def evolution_run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertResource):
        where = alerts.deliver(failure_payload(context, alerts), context.log)
        context.log.info(f"failure of run {context.dagster_run.run_id} reported to {where}")

    return evolution_run_failure_alert


def report_request(run: dg.DagsterRun, instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    """A report-only run for this failed rehearse run, or why none is needed."""
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return dg.SkipReason(f"run {run.run_id} will be retried; its retry is reported with it")
    done = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    if any(r.event_log_entry.dagster_event.event_specific_data.materialization.asset_key == REPORT_KEY
           for r in done):
        return dg.SkipReason(f"run {run.run_id} wrote its report (it failed on the verdict)")
    return dg.RunRequest(run_key=run.run_id, tags={REPORT_OF_TAG: run.run_id})


def build_report_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=REPORT_SENSOR_NAME,
        monitored_jobs=[rehearse],
        request_job=rehearsal_report_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A rehearse run that failed before its report gets one anyway: launches "
        "rehearsal_report_job for it (once per failed run), which reads the run from the instance.",
    )
    def rehearsal_report_after_failure(context: dg.RunFailureSensorContext):
        return report_request(context.dagster_run, context.instance)

    return rehearsal_report_after_failure
