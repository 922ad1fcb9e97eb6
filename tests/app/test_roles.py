"""The role model on a real PostgreSQL: what each group may do, and that users get it only by membership.

The grants are the pipeline's own phase files (tests/app/pg.py runs them), so this is what CockroachDB gets
too; the CockroachDB-only differences (CREATE ROLE IF NOT EXISTS exists there, TRUNCATE needs DROP) are
noted in sql/05-... and sql/10-....
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from evolution_pipeline import roles
from evolution_pipeline.resources.sql_resource import CrdbSqlResource

pytestmark = pytest.mark.slow

INSERT = "INSERT INTO login_events (id, user_id, ip_hash, ua_hash) VALUES (%s, 'roles-test', 'h', 'h')"


def connect(pg, user: str) -> psycopg.Connection:
    return psycopg.connect(pg.url(user), autocommit=True)


def refused(conn: psycopg.Connection, statement: str, params=None) -> str:
    """The SQLSTATE the server answers `statement` with (the test fails if it succeeds)."""
    with pytest.raises(psycopg.Error) as exc:
        conn.execute(statement, params)
    return exc.value.sqlstate


@pytest.fixture(autouse=True)
def _restore(pg):
    yield
    pg.restore_access()


@pytest.mark.parametrize("user", roles.READER.users)
def test_read_only_users_read_and_cannot_write_or_create(pg, user):
    with connect(pg, user) as conn:
        assert conn.execute("SELECT count(*) FROM search_terms").fetchone()[0] >= 10_000
        assert conn.execute("SELECT count(*) FROM login_events").fetchone() is not None
        assert refused(conn, INSERT, (uuid.uuid4(),)) == "42501"
        assert refused(conn, "UPDATE search_terms SET popularity = 0 WHERE term = 'x'") == "42501"
        assert refused(conn, "DELETE FROM login_events WHERE user_id = 'x'") == "42501"
        assert refused(conn, "TRUNCATE login_events") == "42501"
        assert refused(conn, "CREATE TABLE ro_sneaky (id INT)") == "42501"


@pytest.mark.parametrize("user", roles.WRITER.users)
def test_read_write_users_write_and_cannot_change_the_schema(pg, user):
    event = uuid.uuid4()
    with connect(pg, user) as conn:
        conn.execute(INSERT, (event,))
        conn.execute("UPDATE login_events SET ua_hash = 'h2' WHERE id = %s", (event,))
        conn.execute("DELETE FROM login_events WHERE id = %s", (event,))
        assert refused(conn, "CREATE TABLE rw_sneaky (id INT)") == "42501"
        # Not the owner: no ALTER, DROP or TRUNCATE (owner-only on PostgreSQL; DROP on CockroachDB).
        assert refused(conn, "ALTER TABLE search_terms ADD COLUMN x INT") == "42501"
        assert refused(conn, "DROP TABLE login_events") == "42501"
        assert refused(conn, "TRUNCATE login_events") == "42501"
        assert refused(conn, "CREATE INDEX rw_idx ON login_events (ts)") == "42501"


def test_login_users_hold_nothing_but_their_group(pg):
    # No table or schema privilege is granted to a login user directly: all of it is inherited.
    direct = pg.execute(
        "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = ANY(%s)", ([u for p in roles.APP_PATHS for u in p.users],))
    assert direct == []
    memberships = dict(pg.execute(
        "SELECT m.rolname, r.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
        "JOIN pg_roles m ON m.oid = a.member WHERE m.rolname LIKE 'app\\_r%%\\_0%%'"))
    assert memberships == {u: p.group for p in roles.APP_PATHS for u in p.users}
    # The groups themselves cannot log in.
    assert pg.execute("SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname = ANY(%s)",
                      (list(roles.GROUPS),)) == []


def test_privileges_come_from_the_membership(pg):
    """Revoke the membership and the same user can no longer read: the group is the only source."""
    with connect(pg, "app_ro_02") as conn:
        assert conn.execute("SELECT 1 FROM search_terms LIMIT 1").fetchone() == (1,)
    pg.execute("REVOKE app_ro FROM app_ro_02")
    with connect(pg, "app_ro_02") as conn:
        assert refused(conn, "SELECT 1 FROM search_terms LIMIT 1") == "42501"


def test_future_tables_follow_the_groups(pg):
    """ALTER DEFAULT PRIVILEGES: a table the admin creates later is writable by RW, readable by RO."""
    pg.execute("CREATE TABLE IF NOT EXISTS roles_future (id UUID PRIMARY KEY)")
    try:
        with connect(pg, "app_rw_02") as rw, connect(pg, "app_ro_02") as ro:
            rw.execute("INSERT INTO roles_future VALUES (%s)", (uuid.uuid4(),))
            assert ro.execute("SELECT count(*) FROM roles_future").fetchone()[0] == 1
            assert refused(ro, "DELETE FROM roles_future") == "42501"
    finally:
        pg.execute("DROP TABLE roles_future")


def test_future_sequences_follow_the_groups(pg):
    """RW uses sequences (nextval), RO only reads their current value (SELECT), as the DBaaS groups do."""
    pg.execute("CREATE SEQUENCE IF NOT EXISTS roles_seq")
    try:
        with connect(pg, "app_rw_01") as rw, connect(pg, "app_ro_01") as ro:
            assert rw.execute("SELECT nextval('roles_seq')").fetchone()[0] >= 1
            assert ro.execute("SELECT last_value FROM roles_seq").fetchone()[0] >= 1
            assert refused(ro, "SELECT nextval('roles_seq')") == "42501"
            assert refused(ro, "SELECT setval('roles_seq', 100)") == "42501"
    finally:
        pg.execute("DROP SEQUENCE roles_seq")


def test_full_access_group_may_create(pg):
    """app_fa: CREATE on the schema (DDL) and every privilege on the app's tables."""
    assert pg.execute("SELECT has_schema_privilege('app_fa', 'public', 'CREATE'), "
                      "has_table_privilege('app_fa', 'login_events', 'DELETE'), "
                      "has_schema_privilege('app_rw', 'public', 'CREATE'), "
                      "has_schema_privilege('app_ro', 'public', 'CREATE')") == [(True, True, False, False)]


def test_pipeline_creates_groups_and_users_idempotently(pg):
    admin = CrdbSqlResource(url=pg.admin_conninfo("postgres"), database="app", max_attempts=2,
                            retry_base_seconds=0.01)
    pg.execute("DROP ROLE IF EXISTS app_tmp_user", dbname="postgres")
    try:
        assert admin.ensure_group("app_fa") is False  # exists: nothing to do
        assert admin.ensure_login_user("app_tmp_user", "first'pw") is True
        # Existing: left alone, the password is rotate_credentials' from now on.
        assert admin.ensure_login_user("app_tmp_user", "second'pw") is False
        url = f"postgresql://app_tmp_user:first'pw@127.0.0.1:{pg.port}/app"
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("app_tmp_user",)
    finally:
        pg.execute("DROP ROLE IF EXISTS app_tmp_user", dbname="postgres")


def test_standby_user_without_password_cannot_log_in(pg):
    admin = CrdbSqlResource(url=pg.admin_conninfo("postgres"), database="app", max_attempts=2,
                            retry_base_seconds=0.01)
    pg.execute("DROP ROLE IF EXISTS app_tmp_standby", dbname="postgres")
    try:
        assert admin.ensure_login_user("app_tmp_standby", None) is True
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://app_tmp_standby:anything@127.0.0.1:{pg.port}/app")
    finally:
        pg.execute("DROP ROLE IF EXISTS app_tmp_standby", dbname="postgres")
