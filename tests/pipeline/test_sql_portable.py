"""The pipeline's SQL against a real PostgreSQL (same wire protocol as CockroachDB).

Covers what is portable: sql/00-bootstrap.sql, the phase grant files, user creation with passwords bound
client-side, the read-only user really being read-only, and which errors are retried. The CockroachDB-only
statements (CREATE DATABASE IF NOT EXISTS, zone configs, BACKUP, SHOW RANGES, SPLIT AT) cannot run here.
"""

from __future__ import annotations

import psycopg
import pytest

from evolution_pipeline.phases import PHASES, SQL_DIR
from evolution_pipeline.resources.sql import SqlError, _is_retryable
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from evolution_pipeline.sqlscript import load_script
from tests.app.pg import LocalPostgres

pytestmark = pytest.mark.slow

PORTABLE = ("00-bootstrap.sql", "05-phase0-writer-user.sql", "10-phase1-reader-user.sql")


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    server = LocalPostgres(tmp_path_factory.mktemp("pg"))
    yield server
    server.close()


@pytest.fixture
def admin(pg) -> CrdbSqlResource:
    return CrdbSqlResource(url=pg.admin_conninfo("postgres"), database="app", max_attempts=2,
                           retry_base_seconds=0.01)


def connect_as(pg, user: str, password: str):
    return psycopg.connect(f"postgresql://{user}:{password}@127.0.0.1:{pg.port}/app", autocommit=True)


def test_phase_table_files_exist_and_portable_ones_are_listed():
    files = {f for p in PHASES for f in p.sql_files}
    assert set(PORTABLE) <= files
    for name in files:
        assert load_script(SQL_DIR / name), name


def test_portable_files_run_twice_without_changing_anything(admin, pg):
    for name in PORTABLE:
        assert admin.run_script(SQL_DIR / name) == len(load_script(SQL_DIR / name))
    before = pg.execute("SELECT count(*) FROM search_terms")[0][0]
    for name in PORTABLE:
        admin.run_script(SQL_DIR / name)
    assert pg.execute("SELECT count(*) FROM search_terms")[0][0] == before >= 10_000
    # UUID keys from gen_random_uuid(), no sequences anywhere.
    assert pg.execute("SELECT count(*) FROM information_schema.sequences")[0][0] == 0


def test_ensure_login_user_creates_once_with_its_initial_password(admin, pg):
    """The initial password is bound client-side into CREATE USER; a re-run never sets it again (after
    creation rotate_credentials owns it: setting it back could lock the app out)."""
    assert admin.ensure_login_user("app_auditor", "first-pass'word") is True
    assert admin.ensure_login_user("app_auditor", "second-pass'word") is False
    with connect_as(pg, "app_auditor", "first-pass'word") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "app_auditor"
    with pytest.raises(psycopg.OperationalError):
        connect_as(pg, "app_auditor", "second-pass'word")


def test_ensure_login_user_converges_when_the_user_appears_after_the_probe(admin, pg, monkeypatch):
    """The user exists although the probe saw none (an earlier attempt's CREATE committed but its
    reply was lost, or a concurrent run): CREATE USER fails with 42710, which means the goal is met."""
    # What the earlier attempt committed: the user with its password (one statement).
    pg.execute("CREATE ROLE app_racer LOGIN PASSWORD 'racer-secret'", dbname="postgres")
    real_execute = CrdbSqlResource.execute

    def probe_sees_nothing(self, statement, params=None, **kwargs):
        if "pg_roles" in str(statement):
            return []
        return real_execute(self, statement, params, **kwargs)

    monkeypatch.setattr(CrdbSqlResource, "execute", probe_sees_nothing)
    assert admin.ensure_login_user("app_racer", "racer-secret") is True
    monkeypatch.undo()
    with connect_as(pg, "app_racer", "racer-secret") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "app_racer"


def test_reader_file_makes_the_read_only_group_truly_read_only(admin, pg):
    pg.execute("GRANT INSERT, UPDATE ON TABLE login_events TO app_ro")  # a stray grant to the group...
    admin.run_script(SQL_DIR / "10-phase1-reader-user.sql")  # ...that re-running phase 1 removes
    with connect_as(pg, "app_ro_01", pg.passwords["app_ro_01"]) as conn:  # a member of app_ro
        assert conn.execute("SELECT count(*) FROM search_terms").fetchone()[0] >= 10_000
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO login_events (user_id, ip_hash, ua_hash) VALUES ('u', 'x', 'y')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE search_terms SET popularity = 0")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM login_events")


def test_writer_file_lets_the_read_write_group_write_but_not_change_the_schema(admin, pg):
    admin.run_script(SQL_DIR / "05-phase0-writer-user.sql")
    with connect_as(pg, "app_rw_01", pg.passwords["app_rw_01"]) as conn:  # a member of app_rw
        conn.execute("INSERT INTO login_events (user_id, ip_hash, ua_hash) VALUES ('u1', 'x', 'y')")
        conn.execute("DELETE FROM login_events WHERE user_id = 'u1'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE rw_sneaky (id INT)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE search_terms ADD COLUMN sneaky INT")


def test_missing_script_parameter_is_a_clear_error(admin, tmp_path):
    script = tmp_path / "needs-param.sql"
    script.write_text("SELECT %(secret_value)s AS x;\n")
    with pytest.raises(SqlError, match="secret_value"):
        admin.run_script(script)


def test_syntax_and_permission_errors_are_not_retried(admin, pg, monkeypatch):
    calls = []
    real_connect = admin.connect.__func__

    def counting_connect(self, database=None):
        calls.append(1)
        return real_connect(self, database)

    monkeypatch.setattr(CrdbSqlResource, "connect", counting_connect)
    with pytest.raises(SqlError, match="syntax"):
        admin.execute("SELEC 1")
    assert len(calls) == 1


def test_connection_failures_are_retried_then_reported(pg):
    closed = CrdbSqlResource(url="postgresql://root@127.0.0.1:9/defaultdb", max_attempts=3,
                             retry_base_seconds=0.01, connect_timeout_seconds=2)
    with pytest.raises(SqlError, match="still failing after 3 attempts"):
        closed.execute("SELECT 1")


def test_retry_classification_follows_cockroachdb_docs():
    assert _is_retryable(psycopg.errors.SerializationFailure("restart transaction"))  # 40001
    assert _is_retryable(psycopg.errors.AdminShutdown("node draining"))  # 57P01
    assert not _is_retryable(psycopg.errors.SyntaxError("bad"))
    assert not _is_retryable(psycopg.errors.InsufficientPrivilege("no"))
    assert not _is_retryable(psycopg.errors.UniqueViolation("dup"))


def test_insecure_cluster_creates_users_without_a_password(admin, pg):
    """An insecure CockroachDB refuses any password (28P01, cockroachdb/cockroach TestSetUserPasswordInsecure):
    the user is created and no password is ever sent."""
    insecure = admin.model_copy(update={"insecure": True})
    assert insecure.ensure_login_user("app_insecure", "ignored-secret") is True
    assert insecure.ensure_login_user("app_insecure", None) is False
    assert pg.execute("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'app_insecure'",
                      dbname="postgres") == [(True,)]


def test_a_standby_user_is_created_without_a_password(admin, pg):
    """A path's second rotation user: no password until rotate_credentials gives it one, so none logs in."""
    assert admin.ensure_login_user("app_nopass", None) is True
    assert pg.execute("SELECT rolpassword IS NULL, rolcanlogin FROM pg_authid WHERE rolname = 'app_nopass'",
                      dbname="postgres") == [(True, True)]


def test_backups_in_reports_every_error(admin):
    """No error passes for "no backup yet" (PostgreSQL has no SHOW BACKUPS: any error must surface)."""
    with pytest.raises(SqlError, match="SHOW BACKUPS IN"):
        admin.backups_in("s3://missing-bucket/x?AUTH=implicit")


# --- backup destinations are shown redacted --------------------------------------------------------------

def test_backup_destinations_lose_their_credentials_when_shown():
    from evolution_pipeline.resources.sql import redact_uri, scrub

    uri = ("s3://bucket/crdb/phase1/run?AWS_ACCESS_KEY_ID=AKIAEXAMPLE&AWS_SECRET_ACCESS_KEY=wJalr%2Fsecret"
           "&AWS_REGION=us-east-1&AUTH=specified")
    shown = redact_uri(uri)
    assert "AKIAEXAMPLE" not in shown and "wJalr" not in shown
    assert shown.startswith("s3://bucket/crdb/phase1/run?") and "AWS_REGION=us-east-1" in shown
    assert "AUTH=specified" in shown
    assert redact_uri("gs://b/p?AUTH=specified&CREDENTIALS=eyJhbGciOi") == "gs://b/p?AUTH=specified&CREDENTIALS=***"
    assert redact_uri("nodelocal://1/crdb-evolution-backups") == "nodelocal://1/crdb-evolution-backups"
    assert redact_uri("s3://b/p?AUTH=implicit") == "s3://b/p?AUTH=implicit"
    error = f"failed to list {uri}: AccessDenied for key wJalr%2Fsecret"
    assert "wJalr" not in scrub(error, uri) and "AKIAEXAMPLE" not in scrub(error, uri)
