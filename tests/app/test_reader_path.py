"""Before phase 1 the read-only user does not exist: reads go through the writer, the app stays ready
(degraded), and it moves reads to the reader path by itself once the user is created."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from crdb_common import httpc
from crdb_common.httpc import default_tls

from .appproc import AppProcess
from .conftest import app_env
from .metrics_text import value


def _db_queries(client: httpx.Client, pool: str) -> float:
    return value(client.get("/metrics").text, "app_db_query_duration_seconds_count", pool=pool) or 0.0


@pytest.fixture()
def late_reader(pg, tmp_path):
    user, password = f"reader_{secrets.token_hex(4)}", secrets.token_hex(12)
    url = f"postgresql://{user}:{password}@127.0.0.1:{pg.port}/app"
    proc = AppProcess(app_env(pg, APP_DB_READER_URL=url), tmp_path / "app.log")
    yield proc, user, password
    proc.stop()
    pg.execute(f"DROP OWNED BY {user}") if pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)) else None
    pg.execute(f"DROP ROLE IF EXISTS {user}")


def test_reads_fall_back_to_the_writer_until_the_reader_exists(pg, late_reader):
    proc, user, password = late_reader
    body = proc.wait_ready()
    assert body["degraded"] == ["reader"] and body["reader_path"] == "writer"
    assert body["checks"]["reader"]["skipped"] and "phase 1 creates app_ro_01" in body["checks"]["reader"]["detail"]
    with httpx.Client(verify=default_tls(), base_url=proc.base_url, timeout=10) as client:
        writer_before = _db_queries(client, "writer")
        assert client.get("/search", params={"q": "amb"}).json()["count"] > 0
        assert _db_queries(client, "writer") > writer_before

        # Phase 1 creates the read-only user (what sql/10-phase1-reader-user.sql grants).
        pg.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        pg.execute(f"GRANT SELECT ON TABLE search_terms, login_events TO {user}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            body = client.get("/readyz").json()
            if body["reader_path"] == "reader":
                break
            time.sleep(0.5)
        assert body["reader_path"] == "reader" and body["degraded"] == [] and body["ready"]
        assert body["checks"]["reader_read_only"]["ok"] is True
        reader_before = _db_queries(client, "reader")
        assert client.get("/search", params={"q": "amb"}).status_code == 200
        assert _db_queries(client, "reader") > reader_before


def test_a_reader_that_can_write_is_never_hidden_by_the_fallback(pg, late_reader):
    proc, user, password = late_reader
    pg.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    pg.execute(f"GRANT SELECT, INSERT ON TABLE search_terms, login_events TO {user}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = httpc.get(proc.base_url + "/readyz", timeout=10)
        if r.status_code == 503:
            break
        time.sleep(0.5)
    assert r.status_code == 503
    assert "reader user can write" in r.json()["detail"]["reader_read_only"]
