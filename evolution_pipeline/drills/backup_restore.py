"""The backup-restore drill (rehearsal only): prove the latest backup restores, and restores the same data.

It restores the latest backup of the app database that phase 2 took (RESTORE DATABASE app FROM LATEST IN
<phase 2's collection> WITH new_db_name = restore_check_app), compares each table's row count and id
checksum with the source AS OF SYSTEM TIME the backup's end time, then drops only the scratch database.
The live path keeps the non-destructive verification (SHOW BACKUP ... WITH check_files in ops/backup.py).
"""

import time
from dataclasses import dataclass, replace

import dagster as dg

from ..environments import OWNERS, REHEARSAL
from ..ops.common import permanent
from ..phases import LAST_PHASE
from ..resources.cluster import REHEARSAL as REHEARSAL_ENVIRONMENT
from ..resources.restore import RestoreComparison, restore_and_compare, scratch_exists
from ..resources.sql import SqlError, collection_uri, redact_uri, scrub
from ..state import PhaseState
from .node_loss import DRILL_NAME as NODE_LOSS

DRILL_NAME = "backup_restore_drill"


@dataclass(frozen=True)
class RestoreDrillResult:
    comparison: RestoreComparison
    seconds: float  # the whole drill: restore, both fingerprints, drop
    scratch_dropped: bool

    @property
    def mismatches(self) -> list[str]:
        return self.comparison.mismatches()

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.comparison.restored_tables)


def run_restore_drill(crdb, environment: str, state: PhaseState) -> RestoreDrillResult:
    backup = state.backup
    if backup is None or not backup.uri:
        raise permanent(
            f"{state.phase} took no backup ({backup.reason if backup else 'no record'}): nothing to "
            "restore. The backup step must have run against a cluster with the app database."
        )
    uri = backup_location(crdb, state)
    start = time.monotonic()
    try:
        comparison = restore_and_compare(crdb, environment, uri)
        dropped = not scratch_exists(crdb, comparison.scratch)
    except SqlError as exc:
        raise permanent(
            f"the restore drill failed on {redact_uri(uri)}: {scrub(str(exc), uri)}. The scratch "
            "database is dropped on "
            "the next attempt; check SHOW JOBS for the RESTORE job, then re-execute."
        ) from None
    return RestoreDrillResult(comparison, round(time.monotonic() - start, 3), dropped)


def backup_location(crdb, state: PhaseState) -> str:
    """The real collection URI: the phase's record holds only its redacted form (it is shown in the UI), so it
    is rebuilt as the backup step built it, from this resource's destination, the label and the root run id."""
    b = state.backup
    uri = collection_uri(crdb.backup_uri, b.label, state.run_id)
    if redact_uri(uri) != b.uri:
        raise permanent(
            f"{state.phase} backed up to {b.uri}, but the backup destination is now {redact_uri(crdb.backup_uri)}: "
            "set CRDB_BACKUP_URI back to where the phase backed up, or re-run the phase, then re-execute."
        )
    return uri


def metadata(result: RestoreDrillResult) -> dict:
    c = result.comparison
    table = "\n".join(
        f"| {s.table} | {s.rows} | {r.rows} | {'yes' if s == replace(r, table=s.table) else 'NO'} |"
        for s, r in zip(c.source_tables, c.restored_tables)
    )
    return {
        "backup_uri": redact_uri(c.backup_uri),
        "backup_end_time": c.backup_end_time,
        "restore_seconds": dg.MetadataValue.float(c.restore_seconds),
        "drill_seconds": dg.MetadataValue.float(result.seconds),
        "restored_rows": result.rows,
        "tables": len(c.restored_tables),
        "mismatches": len(result.mismatches),
        "scratch_dropped": result.scratch_dropped,
        "comparison": dg.MetadataValue.md(
            f"Source `{c.source}` AS OF SYSTEM TIME '{c.backup_end_time}' vs restored `{c.scratch}`\n\n"
            "| table | source rows | restored rows | ids match |\n|---|---:|---:|---|\n" + table
        ),
    }


def build_backup_restore_asset() -> dg.AssetsDefinition:
    env = REHEARSAL  # never built for the live environment: the guard below and in resources/restore.py agree
    crdb_key, cluster_key = env.resource_key("crdb"), env.resource_key("cluster")

    @dg.asset(
        key=env.asset_key(DRILL_NAME),
        ins={"grown": dg.AssetIn(key=env.asset_key(LAST_PHASE))},
        # Never while the node-loss drill has a node away: it comes after it.
        deps=[env.asset_key(NODE_LOSS)],
        group_name=env.group,
        required_resource_keys={crdb_key, cluster_key},
        pool=env.pool,
        tags=env.evolution_tags,
        kinds={"cockroachdb"},  # SQL only: RESTORE into a scratch database, compare, drop it
        owners=list(OWNERS),
        description="Backup-restore drill: restores the latest backup of the app database into a scratch "
        "database, compares row counts and id checksums with the source as of the backup's end time, "
        "then drops only the scratch database (rehearsal environment only).",
    )
    def backup_restore_drill(context: dg.AssetExecutionContext, grown: PhaseState) -> RestoreDrillResult:
        cluster = getattr(context.resources, cluster_key)
        # Guarded like the rehearsal reset: the environment is the cluster resource's, not this code's say-so.
        if cluster.environment != REHEARSAL_ENVIRONMENT:
            raise permanent(
                f"refusing the restore drill: resource {cluster_key!r} is configured for environment "
                f"{cluster.environment!r}, not {REHEARSAL_ENVIRONMENT!r}"
            )
        result = run_restore_drill(getattr(context.resources, crdb_key), cluster.environment, grown)
        context.log.info(
            f"restore drill: {result.rows} rows restored in {result.comparison.restore_seconds:.1f}s; "
            f"{len(result.mismatches)} mismatch(es)"
        )
        context.add_output_metadata(metadata(result))
        return result

    return backup_restore_drill
