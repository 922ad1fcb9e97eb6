"""The run-failure sensor fires on a really failed run: to a local HTTP stand-in of the webhook, to a stand-in
of Slack's Web API through dagster-slack's own client, or only to the log."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from slack_sdk import WebClient

from evolution_pipeline import sensors
from evolution_pipeline.environments import ENVIRONMENT_TAG
from evolution_pipeline.jobs import evolve, rehearse


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


def _failure_context(instance):
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name=sensors.SENSOR_NAME, dagster_event=event, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def _clear(monkeypatch):
    for name in (sensors.SLACK_TOKEN, sensors.SLACK_CHANNEL, sensors.WEBHOOK_URL, sensors.WEBSERVER_URL):
        monkeypatch.delenv(name, raising=False)


def test_the_sensor_watches_evolve_and_rehearse():
    sensor = sensors.build_failure_sensor([evolve, rehearse])
    assert sensor.name == sensors.SENSOR_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    monitored = {getattr(j, "name", None) for j in sensor._monitored_jobs}  # no public accessor in 1.13
    assert monitored == {"evolve", "rehearse"}


def test_a_failed_run_is_posted_to_the_webhook(monkeypatch, receiver):
    _clear(monkeypatch)
    monkeypatch.setenv(sensors.WEBHOOK_URL, receiver.url + "/hooks/evolution")
    monkeypatch.setenv(sensors.WEBSERVER_URL, "http://dagster.test:3000/")
    sensor = sensors.build_failure_sensor([evolve, rehearse])
    with dg.instance_for_test() as instance:
        context = _failure_context(instance)
        sensor(context)
    assert len(receiver.posts) == 1
    path, body = receiver.posts[0]
    payload = json.loads(body)
    assert path == "/hooks/evolution"
    assert payload["job"] == "failing_job" and payload["environment"] == "rehearsal"
    assert payload["failed_steps"] == ["step_that_fails"]
    assert payload["run_url"] == f"http://dagster.test:3000/runs/{payload['run_id']}"
    assert "`failing_job` (rehearsal) failed" in payload["text"] and "step_that_fails" in payload["text"]


def test_a_webhook_that_refuses_fails_the_tick(monkeypatch):
    _clear(monkeypatch)
    refusing = Receiver(status=500)
    try:
        monkeypatch.setenv(sensors.WEBHOOK_URL, refusing.url)
        with dg.instance_for_test() as instance:
            context = _failure_context(instance)
            with pytest.raises(sensors.AlertDeliveryError, match="answered 500"):
                sensors.build_failure_sensor([evolve])(context)
    finally:
        refusing.close()


def test_slack_goes_through_dagster_slack(monkeypatch):
    _clear(monkeypatch)
    slack = Receiver(reply={"ok": True, "channel": "C1", "ts": "1.0"})
    try:
        monkeypatch.setenv(sensors.SLACK_TOKEN, "xoxb-test")
        monkeypatch.setenv(sensors.SLACK_CHANNEL, "#crdb-evolution")
        from dagster_slack import SlackResource

        # dagster-slack's client, pointed at the local stand-in of Slack's Web API.
        monkeypatch.setattr(
            SlackResource,
            "get_client",
            lambda self: WebClient(token=self.token, base_url=slack.url + "/api/"),
        )
        with dg.instance_for_test() as instance:
            sensors.build_failure_sensor([evolve])(_failure_context(instance))
        path, body = slack.posts[0]
        assert path == "/api/chat.postMessage"
        assert "crdb-evolution" in body and "failing_job" in body
    finally:
        slack.close()


def test_without_a_destination_it_only_logs(monkeypatch, receiver, caplog):
    _clear(monkeypatch)
    logged = []

    class Log:
        def warning(self, text):
            logged.append(text)

    payload = {"text": "`evolve` (live) failed"}
    assert sensors.deliver(payload, Log(), environ={}) == "log"
    assert logged and "set SLACK_BOT_TOKEN" in logged[0]
    assert receiver.posts == []
