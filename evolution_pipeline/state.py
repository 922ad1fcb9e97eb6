"""Small state objects the ops pass along, and that one phase hands to the next.

They hold facts (counts, URIs, timings), never connections or secrets: the real state lives in the cluster,
so a re-execution that reloads these is always safe. Every run reads them back from the Dagster instance's
event log (state_metadata.py, resources/run_state.py), so they are also what the UI shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .phases import Replication


@dataclass(frozen=True)
class BackupRecord:
    # "taken", "reused" (this phase and run already had one) or "skipped" (nothing to back up yet).
    status: str
    # The collection's URI as it may be shown (redact_uri: credentials in its query string replaced by ***);
    # whoever restores rebuilds the real one from its own CRDB_BACKUP_URI, label and run id.
    uri: str | None
    label: str
    reason: str = ""
    backup_path: str | None = None  # the subdirectory SHOW BACKUPS IN lists for it
    seconds: float = 0.0
    # From SHOW BACKUP FROM LATEST IN <uri> WITH check_files (every file checked), totals over its objects.
    size_bytes: int | None = None
    rows: int | None = None
    file_bytes: int | None = None


@dataclass(frozen=True)
class PhaseState:
    """What a phase (and each op inside it) knows when it is done."""

    phase: str
    nodes: int
    data: Replication  # the phase's RANGE default zone
    system: Replication  # the phase's system zones
    run_id: str = ""
    previous_phase: str | None = None
    started_at: float = 0.0
    # Since when the sample app has had a database to serve: the preflight's time when it was ready then,
    # else (a fresh cluster) the moment it became ready after apply_sql. The app checks judge from here.
    app_serving_since: float | None = None
    backup: BackupRecord | None = None
    scaled: bool = False  # True when this run changed the node count
    sql_files_applied: tuple[str, ...] = ()
    zone_statements: tuple[str, ...] = ()  # exactly what apply_sql sent, node 1's locality resolved
    converge_seconds: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    finished_at: float | None = None
    # What preflight read before anything changed: its facts and the live plan (Markdown).
    preflight: dict = field(default_factory=dict)
    plan: str = ""
    # What apply_sql did: statements per SQL file, roles it created (empty when they already existed).
    statements_per_file: dict[str, int] = field(default_factory=dict)
    groups_created: tuple[str, ...] = ()
    users_created: tuple[str, ...] = ()

    def with_timing(self, step: str, seconds: float, **changes) -> PhaseState:
        timings = dict(self.timings)
        timings[step] = round(seconds, 3)
        return replace(self, timings=timings, **changes)
