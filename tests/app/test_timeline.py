"""WebSocket /ws/timeline: history at once, then one point per second with every field the page draws."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from websockets.sync.client import connect

from sample_app.timeline import Timeline, percentile

pytestmark = pytest.mark.slow

POINT_KEYS = {"t", "rps", "latency_ms", "errors", "client_errors", "db_ms", "spike", "ready", "reader_path", "follower_reads", "db_users", "events"}


def test_stream_sends_points_every_second(app, client):
    client.get("/search", params={"q": "ma"})
    with connect(app.base_url.replace("http", "ws") + "/ws/timeline", open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and isinstance(hello["history"], list)
        assert set(hello["controls"]) == {"background", "readers", "writers"}
        client.post("/spike", json={"seconds": 2, "rps": 30})
        points, started = [], time.monotonic()
        while len(points) < 3:
            msg = json.loads(ws.recv(timeout=5))
            assert msg["type"] == "point"
            points.append(msg["point"])
        assert time.monotonic() - started < 5
    for p in points:
        assert set(p) == POINT_KEYS
        assert set(p["latency_ms"]) == {"p50", "p95", "p99"}
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(points)]
    assert all(0.8 <= g <= 1.2 for g in gaps), gaps
    assert any(e["kind"] == "spike_start" for p in hello["history"] + points for e in p["events"])
    assert any(p["spike"]["active"] for p in points)
    assert any(p["ready"] is True for p in points)
    assert any(p["rps"].get("/search", 0) > 0 for p in points)
    # The page's follower-reads badge: off on PostgreSQL, and says why.
    assert all(p["follower_reads"]["on"] is False and "PostgreSQL" in p["follower_reads"]["short"] for p in points[1:])


def test_percentile_and_roll():
    assert percentile([], 0.5) is None
    values = [i / 1000 for i in range(1, 101)]
    assert percentile(values, 0.5) == 0.05 and percentile(values, 0.99) == 0.099
    tl = Timeline(history_seconds=3)
    tl.request("/login", 200, 0.010)
    tl.request("/search", 503, 0.020)
    tl.request("/search", 400, 0.001)
    tl.db("writer", 0.004)
    point = tl.roll(now=100.0)
    assert point["rps"] == {"/login": 1, "/search": 2}
    assert point["errors"] == 1 and point["client_errors"] == 1
    assert point["db_ms"]["writer"]["p50"] == 4.0 and point["db_ms"]["reader"]["count"] == 0
    for t in (101.0, 102.0, 103.0):
        tl.roll(now=t)
    assert [p["t"] for p in tl.points] == [101.0, 102.0, 103.0]  # bounded history
