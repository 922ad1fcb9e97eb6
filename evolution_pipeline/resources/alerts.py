"""Where a failed run is told: Slack (dagster-slack), else a webhook, else only the sensor's log.

A resource, so the failure sensor never reads the environment itself: the secrets (the Slack bot token, the
webhook URL, which carries its own secret) are configured as dg.EnvVar, resolved when the sensor evaluates and
shown in the UI only as the variable's name. alert_resource() uses EnvVar only for variables that are set (an
unset EnvVar is an error at evaluation), so an unconfigured deployment still loads and logs its alerts.
"""

from __future__ import annotations

import os

import dagster as dg
import httpx

from crdb_common import httpc

SLACK_TOKEN, SLACK_CHANNEL = "SLACK_BOT_TOKEN", "EVOLUTION_SLACK_CHANNEL"
WEBHOOK_URL = "EVOLUTION_ALERT_WEBHOOK_URL"
WEBSERVER_URL = "DAGSTER_WEBSERVER_URL"


class AlertDeliveryError(RuntimeError):
    """The alert could not be delivered: the sensor tick fails, so the failure shows in the UI."""


class AlertResource(dg.ConfigurableResource):
    slack_token: str | None = None
    slack_channel: str | None = None
    webhook_url: str | None = None
    webserver_url: str | None = None  # makes the message link to the run (and the rehearsal report)

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_url.rstrip('/')}/runs/{run_id}" if self.webserver_url else ""

    def asset_url(self, path: list[str]) -> str:
        """The asset's page in the Dagster UI (/assets/<key path>): its latest materialization, its checks."""
        return f"{self.webserver_url.rstrip('/')}/assets/{'/'.join(path)}" if self.webserver_url else ""

    def deliver(self, payload: dict, log) -> str:
        """Send the alert where the configuration says; returns where it went."""
        if self.slack_token and self.slack_channel:
            from dagster_slack import SlackResource

            SlackResource(token=self.slack_token).get_client().chat_postMessage(
                channel=self.slack_channel, text=payload["text"])
            return f"slack {self.slack_channel}"
        if self.webhook_url:
            return self._post(payload)
        log.warning(f"{payload['text']} (no alert destination: set {SLACK_TOKEN} + {SLACK_CHANNEL} or {WEBHOOK_URL})")
        return "log"

    def _post(self, payload: dict) -> str:
        try:
            r = httpc.post(self.webhook_url, json=payload, timeout=10.0)
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(f"alert webhook ({WEBHOOK_URL}) unreachable: {type(exc).__name__}") from None
        if r.status_code >= 300:
            raise AlertDeliveryError(f"alert webhook ({WEBHOOK_URL}) answered {r.status_code}: {r.text[:200]}")
        return "webhook"


def alert_resource(environ=None) -> AlertResource:
    environ = os.environ if environ is None else environ

    def env(name: str):
        return dg.EnvVar(name) if environ.get(name) else None

    return AlertResource(slack_token=env(SLACK_TOKEN), slack_channel=env(SLACK_CHANNEL),
                         webhook_url=env(WEBHOOK_URL), webserver_url=env(WEBSERVER_URL))
