"""POST/GET/DELETE /spike: guardrails, one at a time, stop, and the rate it really reaches."""

from __future__ import annotations

import time

import pytest

from .metrics_text import value
from .test_endpoints import assert_error

pytestmark = pytest.mark.slow


def wait_idle(client, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get("/spike").json()
        if not state["active"]:
            return state
        time.sleep(0.1)
    raise TimeoutError("spike still running")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"seconds": 61}, "seconds"),  # APP_SPIKE_MAX_SECONDS=60 in the test env
        ({"seconds": 0}, "seconds"),
        ({"seconds": "10"}, "seconds"),
        ({"rps": 401}, "rps"),  # APP_SPIKE_MAX_RPS=400
        ({"rps": -1}, "rps"),
        ({"rps": True}, "rps"),
        ({"mix": {"login": -0.5, "search": 1}}, "mix.login"),
        ({"mix": {"checkout": 1}}, "mix.checkout"),
        ({"mix": {"login": 0, "search": 0}}, "mix"),
        ({"mix": []}, "mix"),
        ({"duration": 5}, "duration"),
        ([1, 2], "body"),
    ],
)
def test_guardrails(client, body, field):
    assert_error(client.post("/spike", json=body), 400, field)
    assert client.get("/spike").json()["active"] is False


def test_one_spike_at_a_time_and_stop(client):
    started = client.post("/spike", json={"seconds": 30, "rps": 20, "mix": {"login": 1, "search": 3}})
    assert started.status_code == 202, started.text
    assert started.json()["mix"] == {"login": 0.25, "search": 0.75}  # normalized
    try:
        conflict = client.post("/spike", json={"seconds": 5, "rps": 10})
        assert_error(conflict, 409)
        assert conflict.json()["detail"]["id"] == started.json()["id"]
        time.sleep(0.5)
    finally:
        stopped = client.delete("/spike")
    assert stopped.status_code == 200 and stopped.json()["stopped"] is True
    state = stopped.json()["spike"]
    assert state["state"] == "stopped" and state["active"] is False and state["elapsed"] < 5
    assert client.delete("/spike").json()["stopped"] is False  # idempotent
    again = client.post("/spike", json={"seconds": 1, "rps": 10})
    assert again.status_code == 202
    wait_idle(client)


def test_reaches_target_rate_and_shows_in_route_metrics(client):
    before = client.get("/metrics").text
    resp = client.post("/spike", json={"seconds": 3, "rps": 100, "mix": {"login": 0.3, "search": 0.7}})
    assert resp.status_code == 202
    time.sleep(1.6)
    during = client.get("/metrics").text
    assert value(during, "app_spike_target_rps") == 100
    assert 90 <= value(during, "app_spike_achieved_rps") <= 110
    state = wait_idle(client)
    after = client.get("/metrics").text

    assert state["state"] == "finished" and state["errors"] == 0 and state["dropped"] == 0
    assert state["sent"] == 300
    assert abs(state["completed"] - 300) <= 15  # within 5% of the target count
    assert abs(state["average_rps"] - 100) <= 5, state  # within 5% of the target rate
    # The scheduling lag is reported and ordered. Its target (p99 < 20 ms) is a speed target, met in
    # bench/spike_accuracy.py on an idle machine: here 4 workers share 2 cores, and a p99 of 81 ms was seen
    # under that load. 250 ms still catches a generator that sends late in bursts rather than on schedule.
    lag = state["lag_ms"]
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"], lag
    assert lag["p99"] < 250, lag
    # The spike's requests are counted in the same series as HTTP requests to /login and /search.
    grew = sum(
        value(after, "app_requests_total", route=r, status="200")
        - value(before, "app_requests_total", route=r, status="200")
        for r in ("/login", "/search")
    )
    assert grew >= state["completed"]
    logins = value(after, "app_requests_total", route="/login", method="POST", status="200") - value(
        before, "app_requests_total", route="/login", method="POST", status="200"
    )
    assert 50 <= logins <= 130  # ~30% of 300
    assert value(after, "app_spike_target_rps") == 0


def test_dropped_requests_count_as_503_without_a_latency():
    """Over the in-flight cap a due request is dropped: counted as a 503, but with no latency (a 0 s
    observation would pull the percentiles down exactly when the app is overloaded)."""
    import asyncio

    from sample_app.metrics import AppMetrics
    from sample_app.spike import LoadRun
    from sample_app.telemetry import Telemetry
    from sample_app.timeline import Timeline

    metrics, timeline = AppMetrics(dict), Timeline()
    telemetry = Telemetry(metrics, timeline)

    async def slow(kind):
        await asyncio.sleep(0.3)
        return "/search", "GET", 200

    async def scenario():
        run = LoadRun("t", 100, 0.2, {"search": 1.0}, slow, telemetry.request, max_inflight=2)
        run.start()
        await run.wait()
        return run

    run = asyncio.run(scenario())
    assert run.dropped >= 10 and run.completed == 2
    point = timeline.roll()
    assert point["errors"] == run.dropped
    assert point["latency_ms"]["p50"] >= 290, "only the two sent requests have a latency"
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in metrics.registry.collect()
        for s in m.samples
    }
    assert values[("app_request_duration_seconds_count", (("route", "/search"),))] == 2
    dropped_503 = (("method", "GET"), ("route", "/search"), ("status", "503"))
    assert values[("app_requests_total", dropped_503)] == run.dropped
