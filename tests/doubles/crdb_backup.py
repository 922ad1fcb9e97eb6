"""BACKUP / SHOW BACKUPS / SHOW BACKUP / RESTORE for the CockroachDB stand-in (registered on import).

Sources (cockroachdb/cockroach unless named): pkg/cloud/impl_registry.go (storage schemes and the
"unsupported storage scheme" refusal), pkg/backup/backupdest (dated folder names "/2006/01/02-150405.00",
"path does not contain a completed latest backup" as 58P01), pkg/backup/show.go backupShowerHeaders (SHOW
BACKUP columns; file_bytes with check_files), pkg/jobs/resultcols.go BackupRestoreJobResultHeader (what
BACKUP and RESTORE return), cockroachdb/docs src/current/v26.2/show-backup.md (SHOW BACKUPS IN: one
column `path`).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from .crdb_statements import IDENT, STR, _split_table_range, ident, literal, need_database, rows, statement
from .pgwire import PgError, Result

# pkg/cloud: the schemes registered with cloud.RegisterExternalStorageProvider.
SCHEMES = {"nodelocal", "userfile", "s3", "gs", "azure", "azure-blob", "azure-storage", "http", "https",
           "external"}
JOB_COLUMNS = [("job_id", "INT8"), ("status", "TEXT"), ("fraction_completed", "FLOAT8"), ("rows", "INT8")]


def collection_key(uri: str) -> str:
    """Where a collection lives: the URI without its query string (credentials), no trailing slash."""
    parsed = urlsplit(uri)
    if parsed.scheme not in SCHEMES:
        raise PgError("XXUUU", f'unsupported storage scheme: "{parsed.scheme}" - refer to docs to find '
                      "supported storage schemes")
    if parsed.scheme == "nodelocal" and not (parsed.netloc.isdigit() or parsed.netloc == "self"):
        # pkg/cloud/nodelocal: the host names the node ("nodelocal://1/path") or "self".
        raise PgError("XXUUU", "host component of nodelocal URI must be a node ID (use 'self' to specify "
                      "each node should access its own local filesystem)")
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}".rstrip("/")


def _as_of(expr: str | None, now: dt.datetime) -> dt.datetime:
    m = re.fullmatch(r"-(\d+)(ms|s|m)", expr or "")
    if not m:
        return now
    seconds = int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]
    return now - dt.timedelta(seconds=seconds)


@statement(rf"BACKUP\s+(?:DATABASE\s+((?:{IDENT}\s*,?\s*)+)\s+)?INTO\s+({STR})"
           rf"(?:\s+AS\s+OF\s+SYSTEM\s+TIME\s+({STR}))?(?:\s+WITH\s+.*)?")
def _backup(crdb, session, m):
    from .crdb_sql import Backup
    key = collection_key(literal(m[2]))
    dbs = [ident(t.strip()) for t in (m[1] or "").split(",") if t.strip()]
    for db in dbs:
        need_database(crdb, db)
    end = _as_of(literal(m[3]) if m[3] else None, dt.datetime.now(dt.timezone.utc))
    taken = crdb.backups.setdefault(key, [])
    while True:
        path = end.strftime("/%Y/%m/%d-%H%M%S.") + f"{end.microsecond // 10000:02d}"
        if all(b.path != path for b in taken):
            break
        end += dt.timedelta(milliseconds=10)
    scope = dbs or [d for d in crdb.databases if d != "system"]
    snapshot = {d: {t: {"rows": tab.rows, "bytes": tab.bytes} for t, tab in crdb.databases[d].items()}
                for d in scope}
    taken.append(Backup(path, end, not dbs, snapshot))
    total = sum(t["rows"] for d in snapshot.values() for t in d.values())
    return rows(JOB_COLUMNS, [(next(crdb.job_ids), "succeeded", 1.0, total)], tag="BACKUP")


@statement(rf"SHOW\s+BACKUPS\s+IN\s+({STR})")
def _show_backups(crdb, session, m):
    # An empty or missing collection lists 0 rows (the listing finds no dated folders).
    found = sorted(b.path for b in crdb.backups.get(collection_key(literal(m[1])), []))
    return rows([("path", "TEXT")], [(p,) for p in found])


def _find_backup(crdb, which: str, uri: str):
    key = collection_key(uri)
    taken = crdb.backups.get(key, [])
    if which.upper() == "LATEST":
        if not taken:
            raise PgError("58P01", "path does not contain a completed latest backup: "
                          f"{key}/metadata/latest: file does not exist")
        return taken[-1]
    wanted = literal(which)
    wanted = wanted if wanted.startswith("/") else "/" + wanted
    for b in taken:
        if b.path == wanted:
            return b
    raise PgError("58P01", f"{key}{wanted}/BACKUP_MANIFEST: file does not exist")


SHOW_BACKUP_COLUMNS = [("database_name", "TEXT"), ("parent_schema_name", "TEXT"), ("object_name", "TEXT"),
                       ("object_type", "TEXT"), ("backup_type", "TEXT"), ("start_time", "TIMESTAMPTZ"),
                       ("end_time", "TIMESTAMPTZ"), ("size_bytes", "INT8"), ("rows", "INT8"),
                       ("is_full_cluster", "BOOL"), ("regions", "TEXT")]


@statement(rf"SHOW\s+BACKUP\s+(?:FROM\s+)?(LATEST|{STR})\s+IN\s+({STR})(?:\s+WITH\s+(.*))?")
def _show_backup(crdb, session, m):
    backup = _find_backup(crdb, m[1], literal(m[2]))
    options = {o.strip().lower() for o in (m[3] or "").split(",") if o.strip()}
    unknown = options - {"check_files"}
    if unknown:
        raise PgError("42601", f"the CockroachDB stand-in does not model SHOW BACKUP options {sorted(unknown)}")
    check = "check_files" in options
    columns = SHOW_BACKUP_COLUMNS + ([("file_bytes", "INT8")] if check else [])
    out = []
    for db, tables in backup.databases.items():
        base = ("full", None, backup.end_time)
        out.append((None, None, db, "database", *base, None, None, backup.full_cluster, None))
        out.append((db, None, "public", "schema", *base, None, None, backup.full_cluster, None))
        for name, t in tables.items():
            out.append((db, "public", name, "table", *base, t["bytes"], t["rows"], backup.full_cluster, None))
    if check:
        out = [row + ((row[7] // 2 if row[7] is not None else None),) for row in out]
    return rows(columns, out)


@statement(rf"RESTORE\s+DATABASE\s+({IDENT})\s+FROM\s+(LATEST|{STR})\s+IN\s+({STR})"
           rf"(?:\s+WITH\s+new_db_name\s*=\s*({STR}))?")
def _restore(crdb, session, m):
    from .crdb_sql import Table
    source, backup = ident(m[1]), _find_backup(crdb, m[2], literal(m[3]))
    if source not in backup.databases:
        raise PgError("42704", f'database "{source}" not found in backup')
    target = literal(m[4]) if m[4] else source
    if target in crdb.databases:  # restoring over an existing database is refused
        raise PgError("42P04", f'database "{target}" already exists')
    crdb.databases[target] = {}
    for name, v in backup.databases[source].items():  # each restored table gets its own range again
        table = crdb.databases[target][name] = Table(next(crdb.ids), rows=v["rows"])
        _split_table_range(crdb, target, name, table)
    crdb.restored.add(target)
    total = sum(v["rows"] for v in backup.databases[source].values())
    return rows(JOB_COLUMNS, [(next(crdb.job_ids), "succeeded", 1.0, total)], tag="RESTORE")


@statement(rf"DROP\s+DATABASE\s+(IF\s+EXISTS\s+)?({IDENT})(?:\s+CASCADE)?")
def _drop_database(crdb, session, m):
    name = ident(m[2])
    if name not in crdb.databases:
        if m[1]:
            return Result("DROP DATABASE")
        raise PgError("3D000", f'database "{name}" does not exist')
    if name not in crdb.restored:
        # Not a CockroachDB rule: the pipeline never drops, so the stand-in only allows the restore drill's
        # scratch databases to go.
        raise PgError("42501", f'the CockroachDB stand-in refuses DROP DATABASE {name}: only a database '
                      "created by RESTORE ... WITH new_db_name may be dropped (the pipeline never drops)")
    del crdb.databases[name]
    crdb.restored.discard(name)
    crdb.ranges = [r for r in crdb.ranges if r.database != name]  # dropped data is GC'd; the span merges
    return Result("DROP DATABASE")
