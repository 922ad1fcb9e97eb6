"""sql/00-bootstrap.sql on a real PostgreSQL: portable rules, idempotence, seed, index use."""

from __future__ import annotations

import re

from sample_app import services
from sample_app.schema import BOOTSTRAP_SQL, apply_bootstrap, split_statements

SQL = BOOTSTRAP_SQL.read_text()


def test_file_follows_the_shared_rules():
    statements = split_statements(SQL)
    assert len(statements) == 4
    for statement in statements:
        # The pipeline splits on ';' at line ends: none may hide inside a statement.
        assert ";" not in statement
        assert re.match(r"(CREATE TABLE IF NOT EXISTS|CREATE INDEX IF NOT EXISTS|INSERT INTO)", statement)
    upper = "\n".join(statements).upper()  # the statements, not the comments about them
    for forbidden in (
        "CREATE DATABASE",
        "CREATE USER",
        "CREATE ROLE",
        "GRANT ",
        "CONFIGURE ZONE",
        "DROP ",
        "SERIAL",
        "SEQUENCE",
    ):
        assert forbidden not in upper, forbidden
    assert "ON CONFLICT (TERM) DO NOTHING" in upper
    assert upper.count("DEFAULT GEN_RANDOM_UUID()") == 2


def test_tables_seed_and_idempotence(pg):
    before = pg.execute("SELECT count(*), min(term), max(term) FROM search_terms")[0]
    assert before[0] >= 10_000
    apply_bootstrap(pg.admin_conninfo())  # a second run must change nothing
    assert pg.execute("SELECT count(*), min(term), max(term) FROM search_terms")[0] == before
    columns = dict(
        pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'login_events'"
        )
    )
    assert columns == {
        "id": "uuid",
        "user_id": "text",
        "ts": "timestamp with time zone",
        "ip_hash": "text",
        "ua_hash": "text",
    }
    indexes = {r[0] for r in pg.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'login_events'")}
    assert any("(user_id, ts)" in d for d in indexes)


def test_prefix_search_uses_the_index(pg):
    lo, hi = services.prefix_range("amb")
    plan = "\n".join(r[0] for r in pg.execute("EXPLAIN " + services.search_sql(False), (lo, hi, "amb%", 20)))
    assert "Seq Scan" not in plan, plan
    assert "search_terms_term_key" in plan and "Index" in plan, plan


def test_follower_read_clause_only_when_enabled():
    assert "AS OF SYSTEM TIME" not in services.search_sql(False)
    assert "AS OF SYSTEM TIME follower_read_timestamp()" in services.search_sql(True)


def test_cli_applies_and_reports_errors(pg):
    import subprocess
    import sys

    from .appproc import REPO

    ok = subprocess.run(
        [sys.executable, "-m", "sample_app.schema", pg.admin_conninfo()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0 and "applied 4 statements" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "sample_app.schema", pg.admin_conninfo("no_such_db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1 and "no_such_db" in bad.stderr and "Traceback" not in bad.stderr
