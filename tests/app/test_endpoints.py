"""Every endpoint against the real app process and a real PostgreSQL with real roles."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

import httpx
import pytest

from crdb_common.httpc import default_tls

from .appproc import AppProcess
from .conftest import TEST_SALT, app_env


def assert_error(resp, status, field=None):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}, body
    assert "Traceback" not in resp.text
    if field is not None:
        assert field in body["error"] and body["detail"]["field"] == field, body


# --- /login
def hmac_sha256(value: str) -> str:
    """The documented hash, computed independently of sample_app.services."""
    return hmac.new(TEST_SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("agent", ["pytest-agent/1", "pytest-agent/" + "x" * 2000])
def test_login_inserts_hashed_event(client, pg, agent):
    resp = client.post("/login", json={"user_id": "alice@example"}, headers={"User-Agent": agent})
    assert resp.status_code == 200, resp.text
    event = resp.json()
    row = pg.execute(
        "SELECT user_id, ip_hash, ua_hash FROM login_events WHERE id = %s", (uuid.UUID(event["id"]),)
    )
    assert row == [("alice@example", hmac_sha256("127.0.0.1"), hmac_sha256(agent))]
    assert "pytest-agent" not in str(row) and "127.0.0.1" not in str(row)


def test_login_ids_are_unique_random_uuids(client):
    # More logins than one batch of pre-generated ids (services._EventIds.BATCH = 256).
    ids = [client.post("/login", json={"user_id": f"u{n}"}).json()["id"] for n in range(300)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_forwarded_for_is_ignored_without_a_trusted_proxy(client, pg):
    # Without SANIC_PROXIES_COUNT / SANIC_REAL_IP_HEADER / SANIC_FORWARDED_SECRET a client must not
    # choose the address that gets hashed: the peer address is used.
    resp = client.post("/login", json={"user_id": "spoofer"}, headers={"X-Forwarded-For": "203.0.113.9"})
    (ip_hash,) = pg.execute(
        "SELECT ip_hash FROM login_events WHERE id = %s", (uuid.UUID(resp.json()["id"]),)
    )[0]
    assert ip_hash == hmac_sha256("127.0.0.1")


def test_forwarded_for_is_used_behind_a_trusted_proxy(pg, tmp_path):
    proxied = AppProcess(app_env(pg, SANIC_PROXIES_COUNT="1"), tmp_path / "app.log")
    try:
        proxied.wait_ready()
        with httpx.Client(verify=default_tls(), base_url=proxied.base_url, timeout=10.0) as c:
            resp = c.post("/login", json={"user_id": "proxied"}, headers={"X-Forwarded-For": "203.0.113.9"})
        assert resp.status_code == 200, resp.text
    finally:
        proxied.stop()
    (ip_hash,) = pg.execute(
        "SELECT ip_hash FROM login_events WHERE id = %s", (uuid.UUID(resp.json()["id"]),)
    )[0]
    assert ip_hash == hmac_sha256("203.0.113.9")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"json": {}}, "user_id"),
        ({"json": {"user_id": 42}}, "user_id"),
        ({"json": {"user_id": ""}}, "user_id"),
        ({"json": {"user_id": "x" * 65}}, "user_id"),
        ({"json": {"user_id": "bob; DROP TABLE"}}, "user_id"),
        ({"json": {"user_id": "bob", "admin": True}}, "admin"),
        ({"json": ["bob"]}, "body"),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ({}, "body"),
    ],
)
def test_login_bad_input_names_the_field(client, kwargs, field):
    assert_error(client.post("/login", **kwargs), 400, field)


def test_login_body_too_large_is_json(client):
    resp = client.post("/login", content=b"{" + b" " * 100_000 + b"}")
    assert resp.status_code == 413
    assert set(resp.json()) == {"error", "detail"}


# --- /search
def test_search_prefix(client):
    resp = client.get("/search", params={"q": "Amber E", "limit": 7})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["q"] == "amber e" and body["count"] == 7
    terms = [r["term"] for r in body["results"]]
    assert terms == sorted(terms) and all(t.startswith("amber echo") for t in terms)


def test_search_default_limit_and_no_match(client):
    assert client.get("/search", params={"q": "c"}).json()["count"] == 20
    assert client.get("/search", params={"q": "no such term"}).json() == {
        "q": "no such term",
        "count": 0,
        "results": [],
    }


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "a%"}, "q"),
        ({"q": "a_b"}, "q"),
        ({"q": "'; select"}, "q"),
        ({"q": "x" * 41}, "q"),
        ({"q": "amb", "limit": "0"}, "limit"),
        ({"q": "amb", "limit": "51"}, "limit"),
        ({"q": "amb", "limit": "ten"}, "limit"),
    ],
)
def test_search_bad_input_names_the_field(client, params, field):
    assert_error(client.get("/search", params=params), 400, field)


# --- health, errors, page
def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"writer", "reader", "reader_read_only"}


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/nope"), 404)
    assert_error(client.put("/login", json={}), 405)


def test_page_and_static_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    # Works offline: nothing is loaded from another origin (no CDN, no charting library).
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", text)


# --- controls
def test_controls_start_stop_and_report(client):
    assert client.get("/control").json()["writers"]["running"] is False
    for target in ("background", "readers", "writers"):
        started = client.post(f"/control/{target}/start")
        assert started.status_code == 200 and started.json()[target]["running"] is True
        again = client.post(f"/control/{target}/start")  # idempotent
        assert again.status_code == 200 and again.json()[target]["running"] is True
    state = client.get("/control").json()
    assert all(state[t]["running"] for t in ("background", "readers", "writers"))
    for target in ("background", "readers", "writers"):
        stopped = client.post(f"/control/{target}/stop")
        assert stopped.json()[target]["running"] is False
    assert client.post("/control/writers/stop").status_code == 200  # stopping twice is fine


def test_controls_send_traffic(client):
    import time

    before = client.get("/control").json()["readers"]["sent"]
    client.post("/control/readers/start")
    time.sleep(1.2)
    client.post("/control/readers/stop")
    state = client.get("/control").json()["readers"]
    assert state["sent"] > before and state["errors"] == 0


@pytest.mark.parametrize(
    "path, field", [("/control/everything/start", "target"), ("/control/writers/pause", "action")]
)
def test_controls_bad_path(client, path, field):
    resp = client.post(path)
    assert resp.status_code == 404 and resp.json()["detail"]["field"] == field
