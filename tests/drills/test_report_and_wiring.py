"""The rehearsal report renders (Markdown table, numeric metadata, verdict and its reasons), and the drills
are wired where the issue wants them: in `rehearse` after phase 2, in `evolve` only when explicitly
enabled."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.drills import drill_assets, drill_checks, live_drill_enabled
from evolution_pipeline.drills.report import (
    DrillFigures,
    PhaseFigures,
    RehearsalReport,
    build_report,
    metadata,
    render,
    verdict_reasons,
)
from evolution_pipeline.phases import PHASES
from evolution_pipeline.resources.prometheus import PrometheusResource
from evolution_pipeline.state import BackupRecord, PhaseState

BUDGET = 0.01


def _phase(name: str, error_ratio: float | None = 0.0, verified: bool = True) -> PhaseFigures:
    return PhaseFigures(
        phase=name,
        nodes=3,
        converge_seconds=12.5,
        backup_status="taken",
        backup_bytes=1_200_000,
        backup_rows=12000,
        backup_verified=verified,
        p50_seconds=0.0042,
        p99_seconds=0.031,
        error_ratio=error_ratio,
    )


DRILLS = [
    DrillFigures(
        "node_loss_drill", True, "node 3 away 41s", {"detect_seconds": 9.5, "recover_seconds": 22.0}
    ),
    DrillFigures("backup_restore_drill", True, "12000 rows match", {"restore_seconds": 3.2, "mismatches": 0}),
]


def test_a_passing_rehearsal_renders_its_table_and_plottable_figures():
    phases = [_phase(p.name) for p in PHASES]
    report = RehearsalReport(
        tuple(phases), tuple(DRILLS), tuple(verdict_reasons(phases, DRILLS, BUDGET)), BUDGET
    )
    assert report.passed and report.verdict_text() == "PASS"
    md = render(report)
    assert md.splitlines()[0] == "## Rehearsal: PASS"
    assert (
        "| phase2_three_nodes | 3 | 12.5 | taken (files checked) | 1200000 | 12000 | 4.2 | 31.0 | 0.0000 |"
        in md
    )
    assert "| node_loss_drill | pass: node 3 away 41s | detect_seconds 9.5, recover_seconds 22 |" in md
    meta = metadata(report)
    assert meta["verdict_pass"] == 1
    assert meta["phase1_two_nodes_p99_seconds"] == dg.MetadataValue.float(0.031)
    assert meta["node_loss_drill_recover_seconds"] == dg.MetadataValue.float(22.0)
    assert meta["backup_restore_drill_pass"] == 1


@pytest.mark.parametrize(
    ("phases", "drills", "reason"),
    [
        (
            [_phase("phase1_two_nodes", error_ratio=0.05)],
            DRILLS,
            "phase1_two_nodes: 5xx ratio 0.0500 over the budget",
        ),
        (
            [_phase("phase0_single_node", error_ratio=None)],
            DRILLS,
            "phase0_single_node: no 5xx ratio in Prometheus",
        ),
        ([_phase("phase2_three_nodes", verified=False)], DRILLS, "phase2_three_nodes: backup not verified"),
        (
            [_phase("phase2_three_nodes")],
            [DrillFigures("backup_restore_drill", False, "search_terms: restored 5 rows", {})],
            "backup_restore_drill: search_terms: restored 5 rows",
        ),
    ],
)
def test_a_failing_rehearsal_says_why(phases, drills, reason):
    report = RehearsalReport(
        tuple(phases), tuple(drills), tuple(verdict_reasons(phases, drills, BUDGET)), BUDGET
    )
    assert not report.passed
    assert reason in report.verdict_text()
    assert "## Rehearsal: FAIL" in render(report) and metadata(report)["verdict_pass"] == 0


def test_no_prometheus_is_no_figure_and_a_fail_never_a_pass():
    prom = PrometheusResource(url="http://127.0.0.1:9", timeout_seconds=0.5)
    state = PhaseState(
        "phase2_three_nodes",
        3,
        PHASES[-1].data,
        PHASES[-1].system,
        started_at=1.0,
        finished_at=100.0,
        converge_seconds=3.0,
        backup=BackupRecord("taken", "nodelocal://1/x", "phase2", size_bytes=10, rows=2, file_bytes=5),
    )
    report = build_report(prom, [state], [])
    figures = report.phases[0]
    assert (figures.p50_seconds, figures.p99_seconds, figures.error_ratio) == (None, None, None)
    assert not report.passed and "no 5xx ratio" in report.verdict_text()
    # No figure is no point in the asset's plots: left out, never -1.
    assert "phase2_three_nodes_p50_seconds" not in metadata(report)
    assert metadata(report)["phase2_three_nodes_converge_seconds"] == dg.MetadataValue.float(3.0)
    assert "| n/a | n/a | n/a |" in render(report)


def _keys(assets) -> set[str]:
    return {a.key.to_user_string() for a in assets}


def test_evolve_is_unchanged_unless_the_drill_is_enabled():
    assert not live_drill_enabled({})
    assert _keys(drill_assets({})) == {
        "rehearsal/node_loss_drill",
        "rehearsal/backup_restore_drill",
        "rehearsal/rehearsal_report",
    }
    enabled = drill_assets({"EVOLUTION_NODE_LOSS_DRILL": "true"})
    live = next(a for a in enabled if a.key == dg.AssetKey("node_loss_drill"))
    assert live.group_names_by_key[live.key] == "evolution"
    # Only after phase 2: its input is the live phase 2 asset.
    assert set(live.dependency_keys) == {dg.AssetKey(PHASES[-1].name)}
    # Seven checks (in one step, check_steps.py), every one blocking.
    live_checks = [
        s for c in drill_checks({"EVOLUTION_NODE_LOSS_DRILL": "true"}) for s in c.check_specs if s.asset_key == live.key
    ]
    assert len(live_checks) == 7 and all(s.blocking for s in live_checks)


@pytest.mark.parametrize("value", ["maybe", "on "])
def test_an_unclear_switch_is_an_error(value):
    with pytest.raises(ValueError, match="use true or false"):
        live_drill_enabled({"EVOLUTION_NODE_LOSS_DRILL": value})


def test_the_drills_follow_phase_2_and_the_report_comes_last():
    assets = {a.key.to_user_string(): a for a in drill_assets({})}
    drill = assets["rehearsal/node_loss_drill"]
    assert set(drill.dependency_keys) == {dg.AssetKey(["rehearsal", PHASES[-1].name])}
    restore = assets["rehearsal/backup_restore_drill"]
    assert dg.AssetKey(["rehearsal", "node_loss_drill"]) in set(
        restore.dependency_keys
    )  # never with a node away
    report = assets["rehearsal/rehearsal_report"]
    assert set(report.dependency_keys) == {dg.AssetKey(["rehearsal", p.name]) for p in PHASES} | {
        dg.AssetKey(["rehearsal", "node_loss_drill"]),
        dg.AssetKey(["rehearsal", "backup_restore_drill"]),
    }
