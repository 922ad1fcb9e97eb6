"""Someone is told when `evolve` or `rehearse` fails: a run-failure sensor.

Where the message goes is read from the environment at each evaluation (never stored in the definitions, so
no token shows in the UI):
- SLACK_BOT_TOKEN and EVOLUTION_SLACK_CHANNEL set: posted to that channel with dagster-slack's SlackResource;
- else EVOLUTION_ALERT_WEBHOOK_URL set: a JSON POST {"text", "job", "run_id", "environment", "error",
  "failed_steps", "run_url"} (Slack/Teams/Mattermost incoming webhooks read "text");
- else only logged by the sensor (visible in the sensor's tick log).
DAGSTER_WEBSERVER_URL, when set, makes the message link to the run.
"""

import os

import dagster as dg
import httpx

from .environments import ENVIRONMENT_TAG

SENSOR_NAME = "evolution_run_failure_alert"
SLACK_TOKEN, SLACK_CHANNEL = "SLACK_BOT_TOKEN", "EVOLUTION_SLACK_CHANNEL"
WEBHOOK_URL = "EVOLUTION_ALERT_WEBHOOK_URL"
WEBSERVER_URL = "DAGSTER_WEBSERVER_URL"


class AlertDeliveryError(RuntimeError):
    """The alert could not be delivered: the sensor tick fails, so the failure shows in the UI."""


def failure_payload(context: dg.RunFailureSensorContext, environ=None) -> dict:
    environ = os.environ if environ is None else environ
    run = context.dagster_run
    failed = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    error = context.failure_event.message or "run failed"
    base = environ.get(WEBSERVER_URL, "").rstrip("/")
    run_url = f"{base}/runs/{run.run_id}" if base else ""
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


def deliver(payload: dict, log, environ=None) -> str:
    """Send the alert where the environment says; returns where it went."""
    environ = os.environ if environ is None else environ
    token, channel, webhook = environ.get(SLACK_TOKEN), environ.get(SLACK_CHANNEL), environ.get(WEBHOOK_URL)
    if token and channel:
        from dagster_slack import SlackResource

        SlackResource(token=token).get_client().chat_postMessage(channel=channel, text=payload["text"])
        return f"slack {channel}"
    if webhook:
        try:
            r = httpx.post(webhook, json=payload, timeout=10.0)
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(f"alert webhook ({WEBHOOK_URL}) unreachable: {exc}") from exc
        if r.status_code >= 300:
            raise AlertDeliveryError(
                f"alert webhook ({WEBHOOK_URL}) answered {r.status_code}: {r.text[:200]}"
            )
        return "webhook"
    log.warning(
        f"{payload['text']} (no alert destination: set {SLACK_TOKEN} + {SLACK_CHANNEL} or {WEBHOOK_URL})"
    )
    return "log"


def build_failure_sensor(jobs: list) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=SENSOR_NAME,
        monitored_jobs=jobs,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Tells someone when evolve or rehearse fails: Slack (SLACK_BOT_TOKEN + "
        "EVOLUTION_SLACK_CHANNEL), else a webhook (EVOLUTION_ALERT_WEBHOOK_URL), else the sensor's log.",
    )
    def evolution_run_failure_alert(context: dg.RunFailureSensorContext):
        where = deliver(failure_payload(context), context.log)
        context.log.info(f"failure of run {context.dagster_run.run_id} reported to {where}")

    return evolution_run_failure_alert
