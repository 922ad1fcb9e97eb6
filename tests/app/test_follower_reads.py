"""Follower reads on the reader path: auto-detected from the connection's start-up parameters.

Real PostgreSQL underneath every test. CockroachDB is told apart by its `crdb_version` start-up
parameter only (see sample_app/follower_reads.py); crdb_wire.CrdbStartupProxy adds exactly that to a
PostgreSQL connection, so the tests also see the statement text the app sends.
"""

from __future__ import annotations

import pytest

from crdb_common import httpc
from sample_app import follower_reads
from sample_app.follower_reads import Server

from .appproc import AppProcess
from .conftest import app_env
from .crdb_wire import CRDB_VERSION, CrdbStartupProxy

AOST = "AS OF SYSTEM TIME follower_read_timestamp()"


class _PgConn:
    """libpq's parameter_status(name) -> bytes | None, over a dict (what psycopg's pgconn offers)."""

    def __init__(self, **params: str):
        self.params = {k.encode(): v.encode() for k, v in params.items()}

    def parameter_status(self, name: bytes) -> bytes | None:
        return self.params.get(name)


def test_detects_cockroachdb_from_its_real_version_string():
    server = follower_reads.server_of(_PgConn(crdb_version=CRDB_VERSION, server_version="13.0.0"))
    assert server.is_crdb and server.name == "CockroachDB v25.2.1"
    assert follower_reads.enabled("auto", server) and follower_reads.enabled("true", server)
    assert not follower_reads.enabled("false", server)


def test_postgresql_is_never_cockroachdb():
    server = follower_reads.server_of(_PgConn(server_version="16.4"))
    assert not server.is_crdb and server.name == "PostgreSQL 16.4"
    assert not any(follower_reads.enabled(mode, server) for mode in follower_reads.MODES)


@pytest.mark.parametrize(
    "mode, server, path, on, said",
    [
        ("auto", Server(CRDB_VERSION, "13.0.0"), "reader", True, "CockroachDB v25.2.1"),
        ("auto", Server(CRDB_VERSION, "13.0.0"), "writer", False, "reads go through the writer"),
        ("false", Server(CRDB_VERSION, "13.0.0"), "reader", False, "APP_FOLLOWER_READS=false"),
        ("auto", Server(None, "16.4"), "reader", False, "PostgreSQL 16.4 has no AS OF SYSTEM TIME"),
        ("true", Server(None, "16.4"), "reader", False, "set APP_FOLLOWER_READS=auto"),
        ("auto", None, "reader", False, "no reader connection yet"),
    ],
)
def test_status_says_why(mode, server, path, on, said):
    state = follower_reads.status(mode, server, path)
    assert state.on is on and said in state.reason
    assert (state.warning is not None) == (mode == "true" and not on and path == "reader" and server is not None)


def _search_ok(proc: AppProcess) -> None:
    r = httpc.get(proc.base_url + "/search", params={"q": "amb"}, timeout=10)
    assert r.status_code == 200 and r.json()["count"] > 0, r.text


def test_default_auto_is_off_on_postgresql(app):
    body = app.wait_ready()
    assert body["follower_reads"] is False and "PostgreSQL" in body["follower_reads_reason"]
    assert body["warnings"] == []
    _search_ok(app)


def test_true_on_postgresql_is_downgraded_with_a_warning(pg, tmp_path):
    proc = AppProcess(app_env(pg, APP_FOLLOWER_READS="true"), tmp_path / "app.log")
    try:
        body = proc.wait_ready()
        assert body["ready"] and body["follower_reads"] is False
        assert any("APP_FOLLOWER_READS=true" in w and "PostgreSQL" in w for w in body["warnings"])
        _search_ok(proc)  # searched without AS OF SYSTEM TIME, which PostgreSQL would refuse
        assert "APP_FOLLOWER_READS=true but the database is PostgreSQL" in proc.log()  # logged once
    finally:
        proc.stop()


@pytest.fixture()
def crdb_proxy(pg):
    proxy = CrdbStartupProxy(pg.port)
    yield proxy
    proxy.close()


def test_cockroachdb_reader_searches_at_a_follower_timestamp(pg, crdb_proxy, tmp_path):
    env = app_env(
        pg,
        APP_DB_WRITER_URL=crdb_proxy.url("app_rw_01", pg.passwords["app_rw_01"]),
        APP_DB_READER_URL=crdb_proxy.url("app_ro_01", pg.passwords["app_ro_01"]),
    )
    proc = AppProcess(env, tmp_path / "app.log")
    try:
        body = proc.wait_ready()
        assert body["follower_reads"] is True and "CockroachDB v25.2.1" in body["follower_reads_reason"]
        r = httpc.get(proc.base_url + "/search", params={"q": "amb"}, timeout=10)
        # PostgreSQL underneath refuses the clause: proof it was sent (42601 syntax error).
        assert r.status_code == 500 and r.json()["detail"]["sqlstate"] == "42601"
        searches = [s for s in crdb_proxy.statements if "FROM search_terms" in s and "LIKE" in s]
        assert searches and all(AOST in s for s in searches)
        assert httpc.post(proc.base_url + "/login", json={"user_id": "fr"}, timeout=10).status_code == 200
        assert not any(AOST in s for s in crdb_proxy.statements if "login_events" in s)
    finally:
        proc.stop()


def test_writer_fallback_never_reads_at_a_follower_timestamp(pg, crdb_proxy, tmp_path):
    # The reader's login is refused (no such user yet, as before phase 1): reads use the writer.
    env = app_env(
        pg,
        APP_DB_WRITER_URL=crdb_proxy.url("app_rw_01", pg.passwords["app_rw_01"]),
        APP_DB_READER_URL=crdb_proxy.url("no_such_reader", "x"),
    )
    proc = AppProcess(env, tmp_path / "app.log")
    try:
        body = proc.wait_ready()
        assert body["reader_path"] == "writer" and body["follower_reads"] is False
        _search_ok(proc)
        searches = [s for s in crdb_proxy.statements if "FROM search_terms" in s and "LIKE" in s]
        assert searches and not any(AOST in s for s in searches)
    finally:
        proc.stop()
