"""What the restore drill reads from the CockroachDB stand-in: row counts and id checksums, AS OF SYSTEM TIME.

The stand-in (tests/doubles/crdb_sql.py) keeps a row count per table, not rows. This adds, for the drill only:
- `RowHistory`, a mixin that remembers every table's row count over time (MVCC, as far as counts go), and
  makes BACKUP ... AS OF SYSTEM TIME hold what existed at the backup's end time (pkg/backup: a backup is a
  consistent snapshot at its end time; a table or database created after it is not in it);
- the fingerprint statement of evolution_pipeline/resources/restore.py, answered from that history: ids are
  modelled as uuid5(table, i) for the table's i-th row, so a copy with the same rows has the same checksum and
  a copy missing rows has another; crc32ieee is Go's crc32.IEEE (cockroachdb/cockroach pkg/sql/sem/builtins
  "crc32ieee": hash32Builtin(crc32.New(crc32.IEEETable))), zlib.crc32 here; sum(INT) is DECIMAL.
AS OF SYSTEM TIME refuses a future time like DatumToHLC (pkg/sql/sem/asof: "AS OF SYSTEM TIME: cannot specify
timestamp in the future", an errors.Errorf, so SQLSTATE XXUUU) and a time before the GC threshold like
BatchTimestampBeforeGCError (pkg/kv/kvpb/errors.go SafeFormatError: "batch timestamp %v must be after replica
GC threshold %v (r%d: %s)", SQLSTATE XXUUU; gc.ttlseconds defaults to 14400, cockroachdb/docs
src/current/_includes/v26.2/zone-configs/variables.md), and a table that did not exist yet at that
time is 42P01 (the descriptor is read at that time too).
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import uuid
import zlib

from tests.doubles.crdb_backup import collection_key
from tests.doubles.crdb_statements import IDENT, STR, ident, literal, rows, statement
from tests.doubles.pgwire import PgError

GC_TTL_SECONDS = 4 * 3600
# Made by `cockroach init` (pkg/sql/catalog/bootstrap): in every backup of the cluster, whenever it was taken.
INIT_DATABASES = {"defaultdb", "postgres", "system"}


class RowHistory:
    """Mixin for a CrdbSqlStandIn: (time, rows) per table, recorded after every statement."""

    def _history(self) -> dict:
        if not hasattr(self, "row_history"):
            self.row_history = {}
        return self.row_history

    def handle(self, session, sql):
        with self.lock:
            result = super().handle(session, sql)
            now = time.time()
            for db, tables in self.databases.items():
                self._history().setdefault((db, None, None), [(now, 0)])  # when the database appeared
                for name, table in tables.items():
                    series = self._history().setdefault((db, name, table.table_id), [])
                    if not series or series[-1][1] != table.rows:
                        series.append((now, table.rows))
            if sql.lstrip().upper().startswith("BACKUP"):
                self._snapshot_as_of_end(sql)
            return result

    def rows_as_of(self, db: str, table: str, at: float) -> int | None:
        """The table's row count at `at`, or None when it did not exist then (or not anymore)."""
        current = self.databases.get(db, {}).get(table)
        if current is None:
            return None
        series = self._history().get((db, table, current.table_id), [])
        before = [n for t, n in series if t <= at]
        return before[-1] if before else None

    def _snapshot_as_of_end(self, sql: str) -> None:
        uri = next((literal(t) for t in _strings(sql) if "://" in literal(t)), None)
        taken = self.backups.get(collection_key(uri)) if uri else None
        if not taken:
            return
        backup, at = taken[-1], taken[-1].end_time.timestamp()
        kept = {}
        for db, tables in backup.databases.items():
            now = {
                t: dict(v, rows=n) for t, v in tables.items() if (n := self.rows_as_of(db, t, at)) is not None
            }
            if now or self._db_created_before(db, at):
                kept[db] = now
        backup.databases = kept

    def _db_created_before(self, db: str, at: float) -> bool:
        if db in INIT_DATABASES:
            return True
        seen = self._history().get((db, None, None))
        return bool(seen) and seen[0][0] <= at


def _strings(sql: str) -> list[str]:
    import re

    return re.findall(STR, sql)


@functools.lru_cache(maxsize=64)
def id_checksum(table: str, rows: int) -> int:
    return sum(
        zlib.crc32(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{table}/{i}")).encode()) for i in range(1, rows + 1)
    )


@statement(
    rf"SELECT\s+count\(\*\)\s+AS\s+row_count\s*,\s*COALESCE\(sum\(crc32ieee\(id::STRING\)\),\s*0\)\s+AS\s+"
    rf"id_checksum\s+FROM\s+({IDENT})\.({IDENT})\.({IDENT})(?:\s+AS\s+OF\s+SYSTEM\s+TIME\s+({STR}))?"
)
def _fingerprint(crdb, session, m):
    db, schema, table = ident(m[1]), ident(m[2]), ident(m[3])
    if db not in crdb.databases:
        raise PgError("3D000", f'database "{db}" does not exist')
    if schema != "public" or table not in crdb.databases[db]:
        raise PgError("42P01", f'relation "{db}.{schema}.{table}" does not exist')
    if m[4] is None:
        count = crdb.databases[db][table].rows
    else:
        count = _as_of_rows(crdb, db, table, literal(m[4]))
    return rows([("row_count", "INT8"), ("id_checksum", "NUMERIC")], [(count, id_checksum(table, count))])


def _as_of_rows(crdb, db: str, table: str, text: str) -> int:
    if not hasattr(crdb, "rows_as_of"):
        raise PgError(
            "42601",
            "the CockroachDB stand-in answers AS OF SYSTEM TIME only with RowHistory "
            "(tests/drills/crdb_rows.py)",
        )
    at = dt.datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    now = time.time()
    if at.timestamp() > now:
        raise PgError("XXUUU", "AS OF SYSTEM TIME: cannot specify timestamp in the future")
    if at.timestamp() < now - GC_TTL_SECONDS:
        span = next(r for r in crdb.ranges if r.database == db and r.table == table)
        raise PgError(
            "XXUUU",
            f"batch timestamp {at.timestamp():.9f},0 must be after replica GC threshold "
            f"{now - GC_TTL_SECONDS:.9f},0 (r{span.range_id}: {span.start_key}-{span.end_key})",
        )
    count = crdb.rows_as_of(db, table, at.timestamp())
    if count is None:
        raise PgError("42P01", f'relation "{db}.public.{table}" does not exist')
    return count
