"""What a step hands on, as metadata: typed, complete, read back exactly, and never a secret or a fake -1."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.drills.report import DrillFigures, PhaseFigures, RehearsalReport
from evolution_pipeline.phases import PHASES
from evolution_pipeline.state import BackupRecord, PhaseState
from evolution_pipeline.state_metadata import (
    StateMetadataError,
    phase_state_from_metadata,
    phase_state_metadata,
    value_from_metadata,
    value_metadata,
)


def _full_state() -> PhaseState:
    phase = PHASES[1]
    return PhaseState(
        phase=phase.name, nodes=phase.nodes, data=phase.data, system=phase.system, run_id="root-run",
        previous_phase=PHASES[0].name, started_at=1700000000.25, app_serving_since=1700000001.5,
        backup=BackupRecord("taken", "s3://b/phase1/root-run?AWS_SECRET_ACCESS_KEY=***", "phase1",
                            backup_path="/2024/01/01-000000.00", seconds=1.234, size_bytes=4096, rows=12000,
                            file_bytes=4000),
        scaled=True, sql_files_applied=("10-phase1-reader-user.sql",),
        zone_statements=("ALTER RANGE default CONFIGURE ZONE USING num_replicas = 2;",),
        converge_seconds=3.5, timings={"backup": 1.234, "scale": 20.5, "apply_sql": 0.4, "verify_replication": 3.5},
        finished_at=1700000060.0, preflight={"current_nodes": 1, "target_nodes": 2, "unavailable_ranges": 0.0},
        plan="## phase1\n- scale 1 -> 2", statements_per_file={"10-phase1-reader-user.sql": 7},
        groups_created=("app_ro",), users_created=("app_ro_01", "app_ro_02"),
    )


def test_a_phase_state_round_trips_exactly():
    state = _full_state()
    assert phase_state_from_metadata(phase_state_metadata(state)) == state


def test_facts_are_typed_for_the_asset_history():
    md = phase_state_metadata(_full_state())
    assert isinstance(md["started_at"], dg.TimestampMetadataValue)
    assert isinstance(md["finished_at"], dg.TimestampMetadataValue)
    assert isinstance(md["converge_seconds"], dg.FloatMetadataValue)
    assert isinstance(md["scale_step_seconds"], dg.FloatMetadataValue) and md["scale_step_seconds"].value == 20.5
    assert isinstance(md["backup_size_bytes"], dg.IntMetadataValue) and md["backup_size_bytes"].value == 4096
    assert isinstance(md["backup_rows"], dg.IntMetadataValue)
    assert isinstance(md["plan"], dg.MarkdownMetadataValue)
    assert md["backup_uri"].value.endswith("=***")  # the record only ever holds the redacted form


def test_a_figure_that_does_not_exist_is_left_out_never_minus_one():
    phase = PHASES[0]
    state = PhaseState(phase.name, 1, phase.data, phase.system, run_id="r", started_at=5.0,
                       backup=BackupRecord("skipped", None, "phase0", reason="the cluster has no nodes yet"))
    md = phase_state_metadata(state)
    for absent in ("backup_size_bytes", "backup_rows", "backup_uri", "converge_seconds", "finished_at",
                   "app_serving_since", "previous_phase", "plan"):
        assert absent not in md, absent
    assert not any(getattr(v, "value", None) == -1 for v in md.values())
    assert phase_state_from_metadata(md) == state


def test_other_values_round_trip_through_one_json_entry():
    report = RehearsalReport(
        phases=(PhaseFigures("phase0_single_node", 1, None, "skipped", None, None, False, 0.01, 0.2, 0.0),),
        drills=(DrillFigures("node_loss_drill", True, "ok", {"detect_seconds": 2.0, "recover_seconds": None}),),
        reasons=(), error_budget=0.01,
    )
    assert value_from_metadata(value_metadata(report)) == report
    reset = {"reset_at": 1.5, "detail": "recreated", "nodes": 1}
    assert value_from_metadata(value_metadata(reset)) == reset


def test_metadata_never_makes_the_loader_import_other_code():
    forged = {"handover": dg.MetadataValue.json({"value": {"__dataclass__": "os:system", "fields": {}}})}
    with pytest.raises(StateMetadataError, match="only evolution_pipeline types"):
        value_from_metadata(forged)
    with pytest.raises(StateMetadataError, match="no 'handover' entry"):
        value_from_metadata({"nodes": dg.MetadataValue.int(3)})


def test_a_value_that_cannot_be_handed_on_says_what_to_return():
    with pytest.raises(StateMetadataError, match="return a dataclass of plain values"):
        value_metadata(object())
