"""Someone is told when any run of this code location fails: a run-failure sensor.

It watches every job of the code location, the ad-hoc asset runs a presenter starts from the UI included:
with no monitored_jobs, a run status sensor matches every run whose origin is its own code location and
repository (dagster-io/dagster python_modules/dagster/dagster/_core/definitions/run_status_sensor_definition.py:
"if monitored_jobs: ... else: job_match = True" under the same location/repository test), which covers
`evolve`, `rehearse`, the rotation jobs and `__ASSET_JOB`; monitor_all_code_locations would also watch other
code locations, which are not ours to report.

Where the message goes is the `alerts` resource (resources/alerts.py): Slack, a webhook, or the sensor's log.
"""

import dagster as dg

from .environments import ENVIRONMENT_TAG
from .resources.alerts import AlertResource

SENSOR_NAME = "evolution_run_failure_alert"
RESOURCE_KEY = "alerts"


def failure_payload(context: dg.RunFailureSensorContext, alerts: AlertResource) -> dict:
    run = context.dagster_run
    failed = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    error = context.failure_event.message or "run failed"
    run_url = alerts.run_url(run.run_id)
    env_name = run.tags.get(ENVIRONMENT_TAG, "?")
    text = (
        f":rotating_light: `{run.job_name}` ({env_name}) failed: run {run.run_id[:8]}"
        + (f", failed steps: {', '.join(failed)}" if failed else "")
        + f". {error}"
        + (f" {run_url}" if run_url else "")
    )
    return {
        "text": text,
        "job": run.job_name,
        "run_id": run.run_id,
        "environment": env_name,
        "error": error,
        "failed_steps": failed,
        "run_url": run_url,
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
