"""The read-only user truly cannot write, and /readyz notices when it can."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from sample_app.db import Database, DatabaseRefused
from sample_app.metrics import AppMetrics
from sample_app.services import LOGIN_SQL
from sample_app.settings import Settings
from sample_app.telemetry import Telemetry
from sample_app.timeline import Timeline

from .conftest import app_env


def test_reader_pool_is_refused_on_insert(pg):
    async def attempt():
        settings = Settings.from_env(app_env(pg))
        db_ref = {}
        telemetry = Telemetry(AppMetrics(lambda: db_ref["db"].stats()), Timeline())
        db = db_ref["db"] = Database(settings, telemetry)
        await db.open()
        try:
            params = (uuid.uuid4(), "mallory", datetime.now(UTC), "h", "h")
            with pytest.raises(DatabaseRefused) as refused:
                await db.fetch("reader", LOGIN_SQL, params)
            # ...while the writer pool may insert the very same row.
            await db.fetch("writer", LOGIN_SQL, params)
            errors = telemetry.metrics.db_errors.labels("reader", "42501")._value.get()
            return refused.value, errors, params[0]
        finally:
            await db.close()

    refused, errors, event_id = asyncio.run(attempt())
    assert refused.sqlstate == "42501"  # insufficient_privilege, from the server
    assert errors == 1
    assert pg.execute("SELECT user_id FROM login_events WHERE id = %s", (event_id,)) == [("mallory",)]


def test_readyz_fails_when_reader_can_write(client, pg):
    assert client.get("/readyz").status_code == 200
    pg.execute("GRANT INSERT ON TABLE login_events TO app_ro")
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        body = resp.json()
        assert body["error"] == "not ready" and body["ready"] is False
        assert set(body["detail"]) == {"reader_read_only"}
        assert "INSERT on login_events" in body["detail"]["reader_read_only"]
        assert body["checks"]["writer"]["ok"] and body["checks"]["reader"]["ok"]
    finally:
        pg.execute("REVOKE INSERT ON TABLE login_events FROM app_ro")
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_when_reader_can_create_tables(client, pg):
    pg.execute("GRANT CREATE ON SCHEMA public TO app_ro")
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["detail"] == {
            "reader_read_only": "reader user can write: holds CREATE on schema public"
        }
    finally:
        pg.execute("REVOKE CREATE ON SCHEMA public FROM app_ro")
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_when_reader_is_a_superuser(client, pg):
    pg.execute("ALTER ROLE app_ro_01 SUPERUSER", dbname="postgres")
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503 and "reader_read_only" in resp.json()["detail"]
    finally:
        pg.execute("ALTER ROLE app_ro_01 NOSUPERUSER", dbname="postgres")
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_when_writer_cannot_insert(client, pg):
    pg.execute("REVOKE INSERT ON TABLE login_events FROM app_rw")
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503 and set(resp.json()["detail"]) == {"writer"}
        login = client.post("/login", json={"user_id": "carol"})
        assert login.status_code == 500 and login.json()["detail"]["sqlstate"] == "42501"
    finally:
        pg.execute("GRANT INSERT ON TABLE login_events TO app_rw")
    assert client.get("/readyz").status_code == 200



@pytest.mark.parametrize("user", ["app_ro_01", "app_rw_01"])
@pytest.mark.parametrize("statement", [
    "SELECT lo_from_bytea(0, '\\x41'::bytea)",  # a server-side large object, owned by the app user
    "SELECT lo_create(0)",
    "SELECT lo_creat(-1)",
    "CREATE TEMP TABLE scratch (x int)",  # PUBLIC holds TEMP on a new database by default
])
def test_what_the_model_never_needs_is_revoked_on_postgres(pg, user, statement):
    """sample_app/schema.py POSTGRES_HARDENING, applied by make dev's embedded PostgreSQL and by tests/app/pg.py."""
    import psycopg

    with psycopg.connect(pg.url(user), autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)
