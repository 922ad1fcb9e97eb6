"""What a step hands on, as Dagster metadata: written with the output, read back by every later run.

On Kubernetes every run is its own pod and runs share only the instance's database (run and event storage),
so a step's output must live there: the IO manager (resources/run_state.py) records each output as metadata of
its output event, and for the last op of a phase that metadata IS the asset's materialization.

- A PhaseState becomes typed, flat facts (timestamps as timestamps, seconds as floats, counts as ints, the
  plan as Markdown, lists as JSON), so the asset's history in the UI plots them; a figure that does not
  exist (no backup size when nothing was backed up) is left out, never -1, which would plot as a real point.
  phase_state_from_metadata() reads exactly these facts back: what later runs, checks, drills and the report
  see is what the UI shows.
- Any other value (drill results, the report, the rehearsal reset) is one JSON entry, dataclasses tagged with
  their type; only types of this package are ever rebuilt, so metadata cannot make the loader import
  anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

import dagster as dg

from .phases import Replication
from .state import BackupRecord, PhaseState

HANDOVER = "handover"  # the metadata key that says how the value was written
PHASE_STATE = "PhaseState"
PACKAGE = __name__.split(".")[0]
STEP_SECONDS = "_step_seconds"  # timings: <step>_step_seconds


class StateMetadataError(ValueError):
    """Metadata that does not hold a handed-over value (written by something else, or before this format)."""


def float_figures(figures: Mapping[str, float | int | None], prefix: str = "") -> dict[str, dg.MetadataValue]:
    """Figures as floats the UI plots across runs; one that does not exist (None) is left out, never -1,
    which would plot as a real point. The one place every asset and check writes its figures through."""
    return {f"{prefix}{k}": dg.MetadataValue.float(float(v)) for k, v in figures.items() if v is not None}


def phase_state_metadata(state: PhaseState) -> dict[str, dg.MetadataValue]:
    md: dict[str, Any] = {
        HANDOVER: dg.MetadataValue.text(PHASE_STATE),
        "phase": dg.MetadataValue.text(state.phase),
        "nodes": dg.MetadataValue.int(state.nodes),
        "data_replication": dg.MetadataValue.json(dataclasses.asdict(state.data)),
        "system_replication": dg.MetadataValue.json(dataclasses.asdict(state.system)),
        "run_id": dg.MetadataValue.text(state.run_id),
        "started_at": dg.MetadataValue.timestamp(state.started_at),
        "scaled": dg.MetadataValue.bool(state.scaled),
        "sql_files_applied": dg.MetadataValue.json(list(state.sql_files_applied)),
        "zone_statements": dg.MetadataValue.json(list(state.zone_statements)),
        "statements_per_file": dg.MetadataValue.json(dict(state.statements_per_file)),
        "groups_created": dg.MetadataValue.json(list(state.groups_created)),
        "users_created": dg.MetadataValue.json(list(state.users_created)),
        "preflight": dg.MetadataValue.json(dict(state.preflight)),
    }
    optional = {
        "previous_phase": (state.previous_phase, dg.MetadataValue.text),
        "app_serving_since": (state.app_serving_since, dg.MetadataValue.timestamp),
        "finished_at": (state.finished_at, dg.MetadataValue.timestamp),
        "converge_seconds": (state.converge_seconds, dg.MetadataValue.float),
        "plan": (state.plan or None, dg.MetadataValue.md),
    }
    md |= {k: make(v) for k, (v, make) in optional.items() if v is not None}
    md |= {f"{step}{STEP_SECONDS}": dg.MetadataValue.float(float(s)) for step, s in state.timings.items()}
    if state.backup is not None:
        md |= _backup_metadata(state.backup)
    return md


def _backup_metadata(b: BackupRecord) -> dict[str, dg.MetadataValue]:
    md = {"backup_status": dg.MetadataValue.text(b.status), "backup_label": dg.MetadataValue.text(b.label),
          "backup_seconds": dg.MetadataValue.float(b.seconds)}
    texts = {"backup_uri": b.uri, "backup_reason": b.reason or None, "backup_path": b.backup_path}
    ints = {"backup_size_bytes": b.size_bytes, "backup_rows": b.rows, "backup_file_bytes": b.file_bytes}
    md |= {k: dg.MetadataValue.text(v) for k, v in texts.items() if v is not None}
    md |= {k: dg.MetadataValue.int(v) for k, v in ints.items() if v is not None}
    return md


def phase_state_from_metadata(metadata: Mapping[str, Any]) -> PhaseState:
    values = {k: getattr(v, "value", v) for k, v in metadata.items()}
    if values.get(HANDOVER) != PHASE_STATE:
        raise StateMetadataError(f"no {PHASE_STATE} in this metadata (keys: {sorted(values)[:12]})")
    timings = {k.removesuffix(STEP_SECONDS): float(v) for k, v in values.items() if k.endswith(STEP_SECONDS)}
    return PhaseState(
        phase=values["phase"],
        nodes=int(values["nodes"]),
        data=Replication(**values["data_replication"]),
        system=Replication(**values["system_replication"]),
        run_id=values["run_id"],
        previous_phase=values.get("previous_phase"),
        started_at=float(values["started_at"]),
        app_serving_since=values.get("app_serving_since"),
        backup=_backup_from(values),
        scaled=bool(values["scaled"]),
        sql_files_applied=tuple(values["sql_files_applied"]),
        zone_statements=tuple(values["zone_statements"]),
        converge_seconds=values.get("converge_seconds"),
        timings=timings,
        finished_at=values.get("finished_at"),
        preflight=dict(values["preflight"]),
        plan=values.get("plan", ""),
        statements_per_file=dict(values["statements_per_file"]),
        groups_created=tuple(values["groups_created"]),
        users_created=tuple(values["users_created"]),
    )


def _backup_from(values: dict) -> BackupRecord | None:
    if "backup_status" not in values:
        return None
    return BackupRecord(
        status=values["backup_status"], uri=values.get("backup_uri"), label=values["backup_label"],
        reason=values.get("backup_reason", ""), backup_path=values.get("backup_path"),
        seconds=float(values["backup_seconds"]), size_bytes=values.get("backup_size_bytes"),
        rows=values.get("backup_rows"), file_bytes=values.get("backup_file_bytes"),
    )


# --- any other value: one JSON entry ---------------------------------------------------------------------

def value_metadata(value: Any) -> dict[str, dg.MetadataValue]:
    if isinstance(value, PhaseState):
        return phase_state_metadata(value)
    return {HANDOVER: dg.MetadataValue.json({"value": _encode(value)})}


def value_from_metadata(metadata: Mapping[str, Any]) -> Any:
    entry = metadata.get(HANDOVER)
    raw = getattr(entry, "value", entry)
    if raw == PHASE_STATE:
        return phase_state_from_metadata(metadata)
    if not isinstance(raw, dict) or "value" not in raw:
        raise StateMetadataError(f"no {HANDOVER!r} entry in this metadata (keys: {sorted(metadata)[:12]})")
    return _decode(raw["value"])


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v) for k, v in value.items()}}
    raise StateMetadataError(f"cannot hand on a {type(value).__name__} through the instance: return a dataclass "
                             "of plain values (str, int, float, bool, None, tuples, lists, dicts)")


def _decode(raw: Any) -> Any:
    if isinstance(raw, list):
        return [_decode(v) for v in raw]
    if not isinstance(raw, dict):
        return raw
    if "__tuple__" in raw:
        return tuple(_decode(v) for v in raw["__tuple__"])
    if "__dict__" in raw:
        return {k: _decode(v) for k, v in raw["__dict__"].items()}
    module, _, qualname = raw["__dataclass__"].partition(":")
    if module.split(".")[0] != PACKAGE:
        raise StateMetadataError(f"refusing to rebuild {module}:{qualname}: only {PACKAGE} types are handed on")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise StateMetadataError(f"{module}:{qualname} is not a dataclass")
    return cls(**{k: _decode(v) for k, v in raw["fields"].items()})
