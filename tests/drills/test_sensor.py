"""The run-failure sensor fires on a really failed run of any job of the code location: to a local HTTP stand-in of the webhook, to a stand-in
of Slack's Web API through dagster-slack's own client, or only to the log."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from slack_sdk import WebClient

from evolution_pipeline import sensors
from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.environments import ENVIRONMENT_TAG
from evolution_pipeline.resources import alerts
from evolution_pipeline.resources.alerts import AlertDeliveryError, AlertResource, alert_resource


class Receiver:
    """A local HTTP server recording every POST (path, JSON or form body); answers `status`."""

    def __init__(self, status: int = 200, reply: dict | None = None):
        self.posts: list[tuple[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                receiver.posts.append((self.path, body))
                data = json.dumps(reply or {"ok": True}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@dg.op
def step_that_fails():
    raise dg.Failure("node 3 was not back within 600s")


@dg.job(tags={ENVIRONMENT_TAG: "rehearsal"})
def failing_job():
    step_that_fails()


def _failure_context(instance, alerts: AlertResource):
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name=sensors.SENSOR_NAME, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources={sensors.RESOURCE_KEY: alerts},
    ).for_run_failure()


def _alerts(monkeypatch, **env) -> AlertResource:
    """The resource as the code location builds it (alert_resource), from these variables only."""
    for name in (alerts.SLACK_TOKEN, alerts.SLACK_CHANNEL, alerts.WEBHOOK_URL, alerts.WEBSERVER_URL):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return alert_resource()


def test_the_sensor_watches_every_job_of_the_code_location():
    """No monitored_jobs and not monitor_all_code_locations: every run of this code location and repository
    (ad-hoc asset runs, __ASSET_JOB, included), nothing of other locations (run_status_sensor_definition.py)."""
    sensor = sensors.build_failure_sensor()
    assert sensor.name == sensors.SENSOR_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert not sensor._monitored_jobs and not sensor._monitor_all_code_locations  # no public accessor in 1.13
    assert sensors.RESOURCE_KEY in sensor.required_resource_keys
    defs = build_definitions({})
    assert isinstance(defs.resources[sensors.RESOURCE_KEY], AlertResource)


def test_secrets_are_env_vars_never_values(monkeypatch):
    """The token and the webhook URL reach the definitions as dg.EnvVar (the UI shows the variable's name);
    unset variables stay unset rather than becoming an EnvVar that fails every evaluation."""
    res = _alerts(monkeypatch, **{alerts.SLACK_TOKEN: "xoxb-secret", alerts.WEBHOOK_URL: "http://hook/secret"})
    dumped = str(res.model_dump()) + repr(res)
    assert "xoxb-secret" not in dumped and "hook/secret" not in dumped
    assert isinstance(res.slack_token, dg.EnvVar) and res.slack_channel is None
    assert res.slack_token.get_value() == "xoxb-secret"


def test_a_failed_run_is_posted_to_the_webhook(monkeypatch, receiver):
    res = _alerts(monkeypatch, **{alerts.WEBHOOK_URL: receiver.url + "/hooks/evolution",
                                  alerts.WEBSERVER_URL: "http://dagster.test:3000/"})
    sensor = sensors.build_failure_sensor()
    with dg.DagsterInstance.ephemeral() as instance:
        sensor(_failure_context(instance, res))
    assert len(receiver.posts) == 1
    path, body = receiver.posts[0]
    payload = json.loads(body)
    assert path == "/hooks/evolution"
    assert payload["job"] == "failing_job" and payload["environment"] == "rehearsal"
    assert payload["failed_steps"] == ["step_that_fails"]
    assert payload["run_url"] == f"http://dagster.test:3000/runs/{payload['run_id']}"
    assert "`failing_job` (rehearsal) failed" in payload["text"] and "step_that_fails" in payload["text"]


def test_a_webhook_that_refuses_fails_the_tick(monkeypatch):
    refusing = Receiver(status=500)
    try:
        res = _alerts(monkeypatch, **{alerts.WEBHOOK_URL: refusing.url})
        with dg.DagsterInstance.ephemeral() as instance:
            context = _failure_context(instance, res)
            with pytest.raises(AlertDeliveryError, match="answered 500"):
                sensors.build_failure_sensor()(context)
    finally:
        refusing.close()


def test_slack_goes_through_dagster_slack(monkeypatch):
    slack = Receiver(reply={"ok": True, "channel": "C1", "ts": "1.0"})
    try:
        res = _alerts(monkeypatch, **{alerts.SLACK_TOKEN: "xoxb-test", alerts.SLACK_CHANNEL: "#crdb-evolution"})
        from dagster_slack import SlackResource

        seen = []

        # dagster-slack's client, pointed at the local stand-in of Slack's Web API.
        def client(self):
            seen.append(self.token)
            return WebClient(token=self.token, base_url=slack.url + "/api/")

        monkeypatch.setattr(SlackResource, "get_client", client)
        with dg.DagsterInstance.ephemeral() as instance:
            sensors.build_failure_sensor()(_failure_context(instance, res))
        path, body = slack.posts[0]
        assert path == "/api/chat.postMessage"
        assert "crdb-evolution" in body and "failing_job" in body
        assert seen == ["xoxb-test"]  # the EnvVar resolved when the sensor evaluated
    finally:
        slack.close()


def test_without_a_destination_it_only_logs(monkeypatch, receiver):
    res = _alerts(monkeypatch)
    logged = []

    class Log:
        def warning(self, text):
            logged.append(text)

    payload = {"text": "`evolve` (live) failed"}
    assert res.deliver(payload, Log()) == "log"
    assert logged and "set SLACK_BOT_TOKEN" in logged[0]
    assert receiver.posts == []
