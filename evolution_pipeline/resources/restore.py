"""The restore drill's SQL: restore the latest backup of the app database into a scratch database, compare it
with the source as of the backup's end time, and drop only that scratch database.

Functions taking the CrdbSqlResource (the one door to the database). Everything destructive here is guarded
like the rehearsal reset: only the rehearsal environment, only a database named like a scratch copy, never
the app database itself.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

from psycopg import sql as psql

from .cluster import REHEARSAL
from .sql import SqlError, redact_uri
from .sql_resource import CrdbSqlResource

SCRATCH_PREFIX = "restore_check_"
_SCRATCH = re.compile(rf"{SCRATCH_PREFIX}[a-z0-9_]+")


class RestoreRefused(SqlError):
    """The restore drill was asked to do something destructive outside its guard rails."""


@dataclass(frozen=True)
class TableFingerprint:
    """One table's row count and an order-independent checksum of its primary keys (the `id` column)."""

    table: str
    rows: int
    id_checksum: int


@dataclass(frozen=True)
class RestoreComparison:
    source: str
    scratch: str
    backup_uri: str
    backup_end_time: str  # ISO, UTC: what the source was read AS OF
    restore_seconds: float
    source_tables: tuple[TableFingerprint, ...]
    restored_tables: tuple[TableFingerprint, ...]

    def mismatches(self) -> list[str]:
        """Every difference, each naming the table and both figures; empty when the copy is faithful."""
        restored = {t.table: t for t in self.restored_tables}
        out = []
        for src in self.source_tables:
            got = restored.get(src.table)
            if got is None:
                out.append(f"{src.table}: missing from the restored database {self.scratch}")
                continue
            if got.rows != src.rows:
                out.append(
                    f"{src.table}: restored {got.rows} rows, the source had {src.rows} as of "
                    f"{self.backup_end_time}"
                )
            if got.id_checksum != src.id_checksum:
                out.append(f"{src.table}: restored id checksum {got.id_checksum} != source {src.id_checksum}")
        return out


def scratch_name(database: str) -> str:
    """One fixed scratch name per source, so a leftover of a crashed drill is always found and replaced."""
    return f"{SCRATCH_PREFIX}{database}"


def guard(crdb: CrdbSqlResource, environment: str, scratch: str) -> None:
    """Refuse anything but a scratch database on the rehearsal cluster (like the rehearsal reset's guard)."""
    if environment != REHEARSAL:
        raise RestoreRefused(
            f"refusing the restore drill: environment {environment!r} is not {REHEARSAL!r}; "
            "the live path only verifies backups (SHOW BACKUP ... WITH check_files)"
        )
    if not _SCRATCH.fullmatch(scratch) or scratch == crdb.database:
        raise RestoreRefused(
            f"refusing to restore into or drop {scratch!r}: only databases named "
            f"{SCRATCH_PREFIX}<name> are scratch copies, and never {crdb.database!r}"
        )


def backup_end_time(crdb: CrdbSqlResource, uri: str, database: str) -> tuple[dt.datetime, list[str]]:
    """The latest backup's end time and the tables of `database` it holds (SHOW BACKUP's end_time and
    object rows; cockroachdb/cockroach pkg/backup/show.go backupShowerHeaders)."""
    rows = crdb.execute("SHOW BACKUP FROM LATEST IN %(uri)s", {"uri": uri})
    tables = [
        r["object_name"]
        for r in rows
        if r.get("object_type") == "table" and r.get("database_name") == database
    ]
    ends = [r["end_time"] for r in rows if r.get("end_time") is not None]
    if not tables:
        raise SqlError(
            f"the latest backup in {redact_uri(uri)} holds no table of database {database!r}: nothing to compare"
        )
    if not ends:
        raise SqlError(f"SHOW BACKUP FROM LATEST IN {redact_uri(uri)} gave no end_time: cannot compare as of "
                       "the backup")
    return max(ends), sorted(tables)


def fingerprint(
    crdb: CrdbSqlResource, database: str, table: str, as_of: dt.datetime | None = None
) -> TableFingerprint:
    """count(*) and sum(crc32ieee(id::STRING)) (cockroachdb/cockroach pkg/sql/sem/builtins: crc32ieee returns
    INT; sum over INT is DECIMAL, so no overflow). The sum is order-independent: a missing, extra or altered
    id changes it. `as_of`: read the table AS OF SYSTEM TIME that instant (a TIMESTAMPTZ string, parsed by
    pkg/sql/sem/asof DatumToHLC); it must be younger than the GC TTL (gc.ttlseconds, 4 h by default)."""
    query = psql.SQL(
        "SELECT count(*) AS row_count, COALESCE(sum(crc32ieee(id::STRING)), 0) AS id_checksum FROM {}"
    ).format(psql.Identifier(database, "public", table))
    params = None
    if as_of is not None:
        query = query + psql.SQL(" AS OF SYSTEM TIME %(ts)s")
        params = {"ts": _aost(as_of)}
    row = crdb.execute(query, params)[0]
    return TableFingerprint(table, int(row["row_count"]), int(row["id_checksum"]))


def drop_scratch(crdb: CrdbSqlResource, environment: str, scratch: str) -> None:
    guard(crdb, environment, scratch)
    crdb.execute(psql.SQL("DROP DATABASE IF EXISTS {} CASCADE").format(psql.Identifier(scratch)))


def restore_and_compare(crdb: CrdbSqlResource, environment: str, uri: str) -> RestoreComparison:
    """RESTORE DATABASE <app> FROM LATEST IN <uri> WITH new_db_name = <scratch>, then fingerprint every table
    of the backup in the scratch copy (read now: RESTORE writes at its own time) and in the source AS OF the
    backup's end time. The scratch database is dropped afterwards, also when the comparison fails."""
    source, scratch = crdb.database, scratch_name(crdb.database)
    guard(crdb, environment, scratch)
    end, tables = backup_end_time(crdb, uri, source)
    drop_scratch(crdb, environment, scratch)  # a leftover of an earlier, interrupted drill
    try:
        start = time.monotonic()
        # Never retried: RESTORE runs as a job that outlives a broken connection (like BACKUP, see sql.py).
        crdb.execute(
            psql.SQL("RESTORE DATABASE {} FROM LATEST IN %(uri)s WITH new_db_name = %(name)s").format(
                psql.Identifier(source)
            ),
            {"uri": uri, "name": scratch},
            retry=False,
        )
        seconds = time.monotonic() - start
        restored = tuple(fingerprint(crdb, scratch, t) for t in tables)
        original = tuple(fingerprint(crdb, source, t, as_of=end) for t in tables)
    finally:
        drop_scratch(crdb, environment, scratch)
    return RestoreComparison(source, scratch, uri, _aost(end), round(seconds, 3), original, restored)


def scratch_exists(crdb: CrdbSqlResource, scratch: str) -> bool:
    return crdb.database_exists(scratch)


def _aost(ts: dt.datetime) -> str:
    """UTC with its offset, microseconds kept (SHOW BACKUP's end_time is a TIMESTAMPTZ, microsecond precision:
    the true HLC end time can be up to 1 us later: a write committed in that microsecond is in the backup but
    not in the source read, so the drill errs towards a false alarm, never towards a false pass)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone.utc)
    return ts.astimezone(dt.timezone.utc).isoformat(sep=" ")
