"""backup: BACKUP INTO before the topology changes, once per phase and run, then verified without restoring.

The collection is `<backup_uri>/<phase backup label>/<root run id>`, so re-running the op, or re-executing
the run from failure (same root run), finds the backup it already took instead of taking a second one.
Taken or reused, the latest backup is checked with SHOW BACKUP ... WITH check_files (every file it names
must exist) and its size and row counts are recorded.
"""

import dataclasses

import dagster as dg
import psycopg

from ..environments import Environment
from ..phases import Phase
from ..resources.sql import SqlError, collection_uri, redact_uri, scrub
from ..state import BackupRecord, PhaseState
from .common import permanent, phase_op, resource, timed


def build_backup(env: Environment, phase: Phase) -> dg.OpDefinition:
    @phase_op(env, phase, "backup", "cluster", "crdb")
    def backup(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
        crdb = resource(context, env, "crdb")
        with timed() as t:
            record = _backup(context, env, crdb, phase, state)
            if record.uri:
                record = _verified(crdb, record)
        # The destination may carry credentials in its query string (s3 keys): from here on the record holds
        # only its redacted form, since the record is handed on as metadata the UI shows (state_metadata.py).
        shown = redact_uri(record.uri) if record.uri else None
        record = dataclasses.replace(record, uri=shown, seconds=round(t["seconds"], 3))
        context.log.info(f"backup {record.status}: {shown or record.reason}"
                         + (f" ({record.size_bytes} bytes, {record.rows} rows, files checked)" if shown else ""))
        return state.with_timing("backup", t["seconds"], backup=record)

    return backup


def _backup(context, env, crdb, phase, state: PhaseState) -> BackupRecord:
    if resource(context, env, "cluster").control().desired_nodes() == 0:
        return BackupRecord("skipped", None, phase.backup_label, reason="the cluster has no nodes yet")
    if not crdb.database_exists():
        return BackupRecord("skipped", None, phase.backup_label,
                            reason=f"database {crdb.database!r} does not exist yet: no application data to protect")
    uri = collection_uri(crdb.backup_uri, phase.backup_label, state.run_id)
    existing = _listed(crdb, uri)
    if existing:
        return BackupRecord("reused", uri, phase.backup_label, reason="this phase and run already backed up",
                            backup_path=existing[-1].path)
    try:
        crdb.backup_into(uri)
    except SqlError as exc:
        if isinstance(exc.__cause__, (psycopg.OperationalError, ConnectionError)):
            raise permanent(
                f"BACKUP INTO {redact_uri(uri)}: the connection broke before CockroachDB answered "
                f"({scrub(str(exc), uri)}). The backup job may "
                "still be running: check SHOW JOBS, then re-execute this step; it reuses the backup once "
                "SHOW BACKUPS IN lists it."
            ) from None
        raise permanent(
            f"BACKUP INTO {redact_uri(uri)} failed: {scrub(str(exc), uri)}. Check the destination (CRDB_BACKUP_URI) "
            "and its credentials; "
            "nothing was changed in the cluster."
        ) from None
    taken = _listed(crdb, uri)
    if not taken:
        raise permanent(f"BACKUP INTO {redact_uri(uri)} returned but SHOW BACKUPS IN lists nothing: refusing to "
                        "continue")
    return BackupRecord("taken", uri, phase.backup_label, backup_path=taken[-1].path)


def _listed(crdb, uri: str):
    try:
        return crdb.backups_in(uri)
    except SqlError as exc:
        # Any error, "does not exist" included: an empty collection lists 0 rows, so an error means the
        # destination itself is wrong (bucket, path, credentials) and a backup there would fail too.
        raise permanent(f"cannot list the backups in {redact_uri(uri)}: {scrub(str(exc), uri)}. Check "
                        "CRDB_BACKUP_URI and its "
                        "credentials, then re-execute.") from None


def _verified(crdb, record: BackupRecord) -> BackupRecord:
    try:
        check = crdb.verify_backup(record.uri)
    except SqlError as exc:
        raise permanent(
            f"the backup in {redact_uri(record.uri)} did not pass SHOW BACKUP ... WITH check_files: "
            f"{scrub(str(exc), record.uri)}. Do not change "
            "the topology without a restorable backup: inspect the destination, then re-execute this step."
        ) from None
    return dataclasses.replace(record, size_bytes=check.size_bytes, rows=check.rows, file_bytes=check.file_bytes)
