"""The restore drill's SQL (evolution_pipeline/resources/restore.py) through the real CrdbSqlResource against
the wire-level CockroachDB stand-in: restore into a scratch database, compare AS OF the backup's end time,
drop only the scratch database, only in the rehearsal environment."""

from __future__ import annotations

import datetime as dt

import pytest

from evolution_pipeline.drills.backup_restore import run_restore_drill
from evolution_pipeline.drills.checks import judge_restore
from evolution_pipeline.phases import PHASES, SQL_DIR
from evolution_pipeline.resources.restore import RestoreRefused, drop_scratch, restore_and_compare
from evolution_pipeline.resources.sql import SqlError
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from evolution_pipeline.state import BackupRecord, PhaseState
from tests.doubles.crdb_backup import collection_key
from tests.doubles.crdb_sql import CrdbSqlStandIn
from tests.drills.crdb_rows import RowHistory

URI = "nodelocal://1/drill-backups/phase2/run1"


class HistoryStandIn(RowHistory, CrdbSqlStandIn):
    def age(self, seconds: float) -> None:
        """Everything so far happened `seconds` earlier (so BACKUP ... AS OF SYSTEM TIME '-10s' sees it)."""
        with self.lock:
            self.row_history = {k: [(t - seconds, n) for t, n in v] for k, v in self._history().items()}


@pytest.fixture
def crdb():
    with HistoryStandIn(live_nodes=lambda: 3, insecure=True) as standin:
        yield standin


@pytest.fixture
def sql(crdb):
    res = CrdbSqlResource(url=crdb.url, insecure=True, max_attempts=2, retry_base_seconds=0.01,
                          backup_uri="nodelocal://1/drill-backups")
    res.ensure_database()
    res.run_script(SQL_DIR / "00-bootstrap.sql")
    crdb.age(60)  # the app's data is a minute old when the phase's backup is taken
    res.backup_into(URI)
    return res


def _restored_rows(comparison) -> dict:
    return {t.table: t.rows for t in comparison.restored_tables}


def test_restore_matches_the_source_as_of_the_backup_not_as_of_now(crdb, sql):
    # Written after the backup: the source now has one login more than the backup; as of its end time, none.
    sql.execute(
        "INSERT INTO login_events (user_id, ip_hash, ua_hash) VALUES ('u1', 'h', 'h')", database="app"
    )
    comparison = restore_and_compare(sql, "rehearsal", URI)
    assert comparison.mismatches() == []
    assert _restored_rows(comparison) == {"login_events": 0, "search_terms": 12000}
    assert {t.table: t.rows for t in comparison.source_tables} == {"login_events": 0, "search_terms": 12000}
    assert crdb.databases["app"]["login_events"].rows == 1  # the source itself was left alone
    assert "restore_check_app" not in crdb.databases  # dropped again
    restore = crdb.statements_matching(r"^RESTORE")
    assert restore == [
        "RESTORE DATABASE \"app\" FROM LATEST IN 'nodelocal://1/drill-backups/phase2/run1' "
        "WITH new_db_name = 'restore_check_app'"
    ]
    source_reads = crdb.statements_matching(r'FROM "app"\."public"\.\S+ AS OF SYSTEM TIME')
    assert len(source_reads) == 2
    assert all(s.rstrip().endswith("+00:00'") for s in source_reads)


def test_a_backup_missing_rows_fails_naming_the_counts(crdb, sql):
    backup = crdb.backups[collection_key(URI)][-1]
    backup.databases["app"]["search_terms"]["rows"] -= 3  # a backup that lost rows
    comparison = restore_and_compare(sql, "rehearsal", URI)
    problems = comparison.mismatches()
    assert any("search_terms: restored 11997 rows, the source had 12000 as of" in p for p in problems)
    assert any("search_terms: restored id checksum" in p for p in problems)
    assert "restore_check_app" not in crdb.databases  # dropped even though the copy is wrong


def test_the_check_names_the_counts(sql, crdb):
    crdb.backups[collection_key(URI)][-1].databases["app"]["search_terms"]["rows"] = 5
    state = PhaseState(PHASES[-1].name, 3, PHASES[-1].data, PHASES[-1].system, run_id="run1",
                       backup=BackupRecord("taken", URI, "phase2"))
    result = run_restore_drill(sql, "rehearsal", state)
    check = judge_restore("rows", result)
    assert not check.passed
    assert "search_terms: restored 5 rows, the source had 12000" in check.description
    assert judge_restore("dropped", result).passed


def test_a_leftover_scratch_database_is_replaced(crdb, sql):
    sql.execute(f"RESTORE DATABASE app FROM LATEST IN '{URI}' WITH new_db_name = 'restore_check_app'")
    assert "restore_check_app" in crdb.databases  # an earlier drill died before its drop
    assert restore_and_compare(sql, "rehearsal", URI).mismatches() == []
    assert "restore_check_app" not in crdb.databases


def test_a_backup_older_than_the_gc_ttl_fails_and_the_scratch_database_is_dropped(crdb, sql):
    backup = crdb.backups[collection_key(URI)][-1]
    backup.end_time -= dt.timedelta(hours=5)  # the source's history at that time is garbage-collected
    with pytest.raises(SqlError, match="must be after replica GC threshold"):
        restore_and_compare(sql, "rehearsal", URI)
    assert crdb.statements_matching(r"^RESTORE")  # restored, then the source read failed
    assert "restore_check_app" not in crdb.databases


@pytest.mark.parametrize("environment", ["live", "", "Rehearsal"])
def test_never_outside_the_rehearsal(crdb, sql, environment):
    with pytest.raises(RestoreRefused, match="not 'rehearsal'"):
        restore_and_compare(sql, environment, URI)
    assert crdb.statements_matching(r"^(RESTORE|DROP)") == []


@pytest.mark.parametrize(
    "name", ["app", "defaultdb", "restore_check_", "restore_check_app; DROP DATABASE app"]
)
def test_only_scratch_databases_are_dropped(crdb, sql, name):
    with pytest.raises(RestoreRefused):
        drop_scratch(sql, "rehearsal", name)
    assert crdb.statements_matching(r"^DROP") == []


def test_a_backup_without_the_app_tables_is_an_error(crdb):
    res = CrdbSqlResource(url=crdb.url, insecure=True, max_attempts=2, retry_base_seconds=0.01)
    res.ensure_database()
    res.run_script(SQL_DIR / "00-bootstrap.sql")
    res.backup_into(URI)  # AS OF '-10s': the tables were created after that instant, so they are not in it
    with pytest.raises(SqlError, match="holds no table of database 'app'"):
        restore_and_compare(res, "rehearsal", URI)


def test_no_backup_recorded_fails_with_what_to_do(sql):
    state = PhaseState(
        PHASES[-1].name,
        3,
        PHASES[-1].data,
        PHASES[-1].system,
        backup=BackupRecord("skipped", None, "phase2", reason="no database yet"),
    )
    with pytest.raises(Exception, match="took no backup"):
        run_restore_drill(sql, "rehearsal", state)


def test_the_stand_in_refuses_a_future_as_of(crdb, sql):
    with pytest.raises(SqlError, match="cannot specify timestamp in the future"):
        sql.execute(
            "SELECT count(*) AS row_count, COALESCE(sum(crc32ieee(id::STRING)), 0) AS id_checksum "
            "FROM app.public.search_terms AS OF SYSTEM TIME '2999-01-01 00:00:00+00:00'"
        )


def test_the_real_destination_is_rebuilt_and_a_moved_one_refused(sql, crdb):
    """The phase's record holds only the redacted URI (it is shown in the UI): the drill rebuilds the real one
    from its own CRDB_BACKUP_URI, and refuses when that no longer names where the phase backed up."""
    state = PhaseState(PHASES[-1].name, 3, PHASES[-1].data, PHASES[-1].system, run_id="run1",
                       backup=BackupRecord("taken", URI, "phase2"))
    moved = CrdbSqlResource(url=crdb.url, insecure=True, backup_uri="nodelocal://1/elsewhere")
    with pytest.raises(Exception, match="set CRDB_BACKUP_URI back to where the phase backed up"):
        run_restore_drill(moved, "rehearsal", state)
    assert crdb.statements_matching(r"^RESTORE") == []
