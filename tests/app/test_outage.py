"""The database goes away and comes back: 503 while it is gone, then recovery, nothing lost.

Also: the app starts without a database and reports not-ready until it can reach one.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import psycopg
import pytest

from crdb_common.httpc import default_tls

from .appproc import AppProcess
from .conftest import app_env

pytestmark = pytest.mark.slow


def _login_loop(base_url: str, stop: threading.Event, results: list) -> None:
    with httpx.Client(verify=default_tls(), base_url=base_url, timeout=10.0) as c:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                r = c.post("/login", json={"user_id": f"outage-{n}"})
                results.append((r.status_code, r.json()))
            except httpx.HTTPError as exc:  # the app itself must never drop a connection
                results.append((0, str(exc)))
            time.sleep(0.02)


def test_outage_then_recovery_loses_nothing(app, pg):
    stop = threading.Event()
    results: list = []
    loop = threading.Thread(target=_login_loop, args=(app.base_url, stop, results))
    loop.start()
    try:
        time.sleep(0.5)
        pg.stop()
        try:
            time.sleep(2.5)
            with httpx.Client(verify=default_tls(), base_url=app.base_url, timeout=10) as c:
                login = c.post("/login", json={"user_id": "during-outage"})
                search = c.get("/search", params={"q": "amb"})
                ready = c.get("/readyz")
                health = c.get("/healthz")
        finally:
            pg.start()
        assert login.status_code == 503 and login.json()["error"] == "database unavailable"
        assert login.json()["detail"]["pool"] == "writer"
        assert search.status_code == 503 and search.json()["detail"]["pool"] == "reader"
        assert ready.status_code == 503 and set(ready.json()["detail"]) == {
            "writer",
            "reader",
            "reader_read_only",
        }
        assert health.status_code == 200  # liveness is not readiness: no restart for a DB outage
        app.wait_ready(timeout=30)
        time.sleep(0.5)
    finally:
        stop.set()
        loop.join(timeout=15)

    statuses = [s for s, _ in results]
    assert 0 not in statuses, [r for r in results if r[0] == 0][:3]
    assert set(statuses) <= {200, 503}, set(statuses)
    assert 503 in statuses and statuses[-1] == 200
    # Nothing lost: every login the app acknowledged is in the table, exactly once.
    acked = [uuid.UUID(body["id"]) for s, body in results if s == 200]
    stored = pg.execute("SELECT count(*) FROM login_events WHERE id = ANY(%s)", (acked,))[0][0]
    assert stored == len(acked) > 0


def test_app_starts_without_database_and_becomes_ready(pg, tmp_path):
    pg.stop()
    proc = None
    try:
        proc = AppProcess(app_env(pg), tmp_path / "app.log")  # /healthz answers with no database
        with httpx.Client(verify=default_tls(), base_url=proc.base_url, timeout=10) as c:
            resp = c.get("/readyz")
            assert resp.status_code == 503 and resp.json()["ready"] is False
            # The operator sees why, not just "no connection": the server cannot be reached at all.
            assert "Connection refused" in resp.json()["detail"]["writer"], resp.json()
            assert resp.elapsed.total_seconds() < 4.5  # before the pipeline's 5 s prober gives up
            assert c.post("/login", json={"user_id": "early"}).status_code == 503
        pg.start()
        proc.wait_ready(timeout=30)
        with httpx.Client(verify=default_tls(), base_url=proc.base_url, timeout=10) as c:
            assert c.post("/login", json={"user_id": "late"}).status_code == 200
    finally:
        if not _running(pg):
            pg.start()
        if proc:
            proc.stop()


def _running(pg) -> bool:
    try:
        pg.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def test_missing_configuration_exits_with_a_message(tmp_path):
    import subprocess
    import sys

    from .appproc import REPO

    out = subprocess.run(
        [sys.executable, "-m", "sample_app", "--port", "1"],
        cwd=REPO,
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert "APP_DB_WRITER_URL is not set" in out.stderr and "Traceback" not in out.stderr


def test_wrong_reader_password_is_named_in_readyz(pg, tmp_path):
    bad_url = pg.url("app_ro_01").replace(pg.passwords["app_ro_01"], "not-the-password")
    proc = AppProcess(app_env(pg, APP_DB_READER_URL=bad_url), tmp_path / "app.log")
    try:
        with httpx.Client(verify=default_tls(), base_url=proc.base_url, timeout=10) as c:
            # A refused reader login looks the same as "app_ro_01 not created yet" (phase 0): reads
            # fall back to the writer and /readyz says so as degraded, naming the server's reason.
            body = proc.wait_ready()
            resp = c.get("/readyz")
            body = resp.json()
            assert resp.status_code == 200 and body["degraded"] == ["reader"], body
            assert "password authentication failed" in body["checks"]["reader"]["detail"], body
            assert bad_url.split("@")[0].split(":")[-1] not in resp.text  # never echo the password
            assert c.post("/login", json={"user_id": "still-writes"}).status_code == 200
    finally:
        proc.stop()


def test_recovery_after_a_long_outage_does_not_wait_out_the_pool_backoff(pg, tmp_path):
    """psycopg_pool doubles its reconnect delay while the database is away; after 25 s its next try
    can be 15+ s out. The app replaces a pool that has no connection as soon as a direct login works."""
    proc = AppProcess(app_env(pg), tmp_path / "app.log")
    try:
        proc.wait_ready()
        pg.stop()
        time.sleep(25)
        pg.start()
        started = time.monotonic()
        proc.wait_ready(timeout=20)
        assert time.monotonic() - started < 8
        assert "pool had no connection while the database accepts logins" in proc.log()
    finally:
        proc.stop()
