"""What a hostile or careless client sends (issue 26): never a 5xx, never a stuck spike, never a cross-site write.

One app process, with a short total request limit (APP_REQUEST_TIMEOUT_SECONDS=2) so the slow-client test
stays fast; the other tests do not depend on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import time
from types import SimpleNamespace

import httpx
import pytest

from crdb_common.httpc import default_tls
from sample_app.spike import SpikeController

from .appproc import AppProcess
from .conftest import app_env
from .metrics_text import value
from .test_endpoints import assert_error

pytestmark = pytest.mark.slow
REQUEST_LIMIT = 2


@pytest.fixture(scope="module")
def hostile_app(pg, tmp_path_factory):
    proc = AppProcess(app_env(pg, APP_REQUEST_TIMEOUT_SECONDS=str(REQUEST_LIMIT)),
                      tmp_path_factory.mktemp("hostile") / "app.log")
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture()
def hc(hostile_app):
    with httpx.Client(verify=default_tls(), base_url=hostile_app.base_url, timeout=10.0) as c:
        yield c


def requests_counted(c: httpx.Client, route: str, status: str) -> float:
    return value(c.get("/metrics").text, "app_requests_total", route=route, status=status)


def raw_socket(app: AppProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", app.port), timeout=10)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


# --- 1: a client that goes away is no server error
def test_a_client_that_disconnects_mid_request_is_counted_499_not_500(hostile_app, hc):
    before_500 = requests_counted(hc, "/login", "500")
    before_499 = requests_counted(hc, "/login", "499")
    body = b'{"user_id": "gone-away"}'
    for _ in range(3):
        with raw_socket(hostile_app) as s:  # headers and half the body, then the client gives up
            s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            time.sleep(0.2)
    wait_until(lambda: requests_counted(hc, "/login", "499") >= before_499 + 3, 5, "three 499s counted")
    assert requests_counted(hc, "/login", "500") == before_500
    log = hostile_app.log()
    assert "RequestCancelled" not in log and "ERROR" not in log, log


# --- 2 and 3: spike bodies that cannot work are refused, and a failed spike never blocks the next
@pytest.mark.parametrize("body, field", [
    ('{"mix": {"login": 1e308, "search": 1e308}}', "mix"),
    ('{"mix": {"login": 1e400}}', "mix.login"),  # valid JSON that Python reads as inf
    ('{"mix": {"login": NaN}}', "body"),
    ('{"seconds": Infinity}', "body"),
    ('{"seconds": ' + "9" * 400 + "}", "seconds"),
    ('{"rps": ' + "9" * 400 + "}", "rps"),
    ('{"mix": {"login": ' + "9" * 400 + ', "search": 1}}', "mix.login"),
    ('{"mix": {"login": 1, "search": ' + "9" * 400 + "}}", "mix.search"),
    ('{"rps": ' + "9" * 5000 + "}", "body"),  # past Python's 4300-digit limit for int(): not readable
    ('{"mix": {"login": -0.0, "search": 1e-300}, "rps": 5e-324}', "rps"),
])
def test_spike_bodies_that_cannot_work_are_400_naming_the_field(hc, body, field):
    resp = hc.post("/spike", content=body, headers={"Content-Type": "application/json"})
    assert_error(resp, 400, field)
    assert hc.get("/spike").json()["active"] is False


def test_a_spike_whose_task_fails_ends_failed_with_its_error_and_frees_the_slot(caplog):
    """In process: a schedule that raises (here the weights parse_mix now refuses, inf) must not leave the
    spike "running" for ever with every later POST /spike answered 409."""
    settings = SimpleNamespace(spike_max_seconds=60, spike_max_rps=400, spike_max_inflight=16)
    gauge = SimpleNamespace(set=lambda v: None)
    metrics = SimpleNamespace(spike_target=gauge, spike_achieved=gauge, spike_workers=gauge)
    events = []
    timeline = SimpleNamespace(event=lambda kind, **kw: events.append((kind, kw)))

    async def workload(kind):
        return ("/search", "GET", 200)

    async def scenario():
        ctl = SpikeController(settings, workload, lambda *a: None, metrics, timeline)
        ctl.start({"seconds": 5, "rps": 50})
        ctl.current.mix = {"login": math.inf, "search": math.inf}  # what the old parse let through
        ctl.current._kinds, ctl.current._weights = ["login", "search"], [math.inf, math.inf]
        await asyncio.wait_for(ctl.current.wait(), 5)
        failed = ctl.state()
        again = ctl.start({"seconds": 0.2, "rps": 10})
        await asyncio.wait_for(ctl.current.wait(), 5)
        return failed, again

    with caplog.at_level(logging.ERROR, logger="sample_app.spike"):
        failed, again = asyncio.run(scenario())
    assert failed["state"] == "failed" and failed["active"] is False, failed
    assert "weights" in failed["error"], failed  # the exception's own words
    assert again["state"] == "running"
    assert ("spike_stop", {"id": failed["id"], "state": "failed", "completed": failed["completed"]}) in events
    assert any("spike" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)


# --- 5: only JSON on JSON routes, and no write driven from another site
@pytest.mark.parametrize("route, content", [("/login", '{"user_id": "csrf-victim"}'), ("/spike", '{"seconds": 1}')])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_json_routes_refuse_other_content_types_with_415(hc, pg, route, content, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    rows = pg.execute("SELECT count(*) FROM login_events WHERE user_id = 'csrf-victim'")[0][0]
    resp = hc.post(route, content=content, headers=headers)
    assert_error(resp, 415)
    assert "application/json" in json.dumps(resp.json())
    assert pg.execute("SELECT count(*) FROM login_events WHERE user_id = 'csrf-victim'")[0][0] == rows
    assert hc.get("/spike").json()["active"] is False


def test_json_with_a_charset_is_json(hc):
    resp = hc.post("/login", content='{"user_id": "charset"}', headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/login", {"user_id": "cross-site"}),
    ("POST", "/spike", {"seconds": 1, "rps": 5}),
    ("DELETE", "/spike", None),
    ("POST", "/control/background/start", None),
])
@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://other.127.0.0.1.nip.io"},
    {"Origin": "https://evil.example"},  # a browser without Fetch Metadata still sends Origin
    {"Origin": "null"},  # a sandboxed frame or a data: page
])
def test_state_changing_routes_refuse_other_sites(hc, pg, method, path, body, headers):
    resp = hc.request(method, path, json=body, headers=headers)
    assert_error(resp, 403)
    assert "cross-site" in resp.json()["error"]
    assert pg.execute("SELECT count(*) FROM login_events WHERE user_id = 'cross-site'")[0][0] == 0
    assert hc.get("/spike").json()["active"] is False
    assert hc.get("/control").json()["background"]["running"] is False


def test_same_origin_pages_and_plain_clients_are_served(hc, hostile_app):
    same = {"Sec-Fetch-Site": "same-origin", "Origin": hostile_app.base_url}
    assert hc.post("/login", json={"user_id": "page"}, headers=same).status_code == 200
    assert hc.post("/login", json={"user_id": "page"}, headers={"Origin": hostile_app.base_url}).status_code == 200
    assert hc.post("/login", json={"user_id": "curl"}).status_code == 200  # no Origin: not a browser
    assert hc.post("/login", json={"user_id": "typed"}, headers={"Sec-Fetch-Site": "none"}).status_code == 200


# --- 6: the user_id pattern matches the whole value
@pytest.mark.parametrize("user_id", ["alice\n", "alice\r\n", "\nalice", "a\nb"])
def test_a_user_id_with_a_newline_is_refused(hc, pg, user_id):
    assert_error(hc.post("/login", json={"user_id": user_id}), 400, "user_id")
    assert pg.execute("SELECT count(*) FROM login_events WHERE user_id LIKE 'alice%%' AND user_id <> 'alice'"
                      " AND position(chr(10) in user_id) > 0")[0][0] == 0


# --- slow clients: a request has a total time limit, however it trickles
def test_a_trickling_client_is_cut_at_the_total_request_limit(hostile_app, hc):
    """Sends one byte every 0.3 s (each byte would reset Sanic's own timeout): cut within the limit + 1 s."""
    body = b'{"user_id": "' + b"s" * 60 + b'"}'
    started = time.monotonic()
    before = requests_counted(hc, "/login", "408")
    with raw_socket(hostile_app) as s:
        s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        answer = b""
        for byte in body:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.3)
            if time.monotonic() - started > REQUEST_LIMIT + 3:
                break
        s.settimeout(3)
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except OSError:
            pass
    elapsed = time.monotonic() - started
    assert elapsed < REQUEST_LIMIT + 3.5, elapsed
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    wait_until(lambda: requests_counted(hc, "/login", "408") >= before + 1, 5, "the 408 counted")
    assert requests_counted(hc, "/login", "503") == 0


def test_trickling_headers_are_cut_too(hostile_app):
    started = time.monotonic()
    with raw_socket(hostile_app) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = b""
        s.settimeout(0.3)
        while time.monotonic() - started < REQUEST_LIMIT + 3:
            try:
                s.sendall(b"X-Slow: 1\r\n")
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            except TimeoutError:
                continue
            except OSError:
                break
    assert time.monotonic() - started < REQUEST_LIMIT + 3, "the connection outlived the limit"
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:200]
