"""The node-loss drill against the stand-ins, with a real Prometheus scraping the stand-in nodes: it sees the
drop and the recovery. The whole `rehearse` job (phases, drills, report), the failure paths (the node not back
in time: the checks fail and the node was started anyway; a crash mid-drill: the node is still brought back),
and the refusals (node 1, a phase that tolerates no failure, a cluster not whole)."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.drills import checks as drill_checks
from evolution_pipeline.drills import node_loss
from evolution_pipeline.drills.node_loss import NodeLossConfig, run_node_loss
from evolution_pipeline.environments import REHEARSAL
from evolution_pipeline.phases import PHASES, SQL_DIR
from evolution_pipeline.zones import zone_statements
from tests.doubles.pipeline_world import read_world, world

pytestmark = pytest.mark.slow

FAST = {
    "outage_seconds": 3.0,
    "detect_timeout_seconds": 20.0,
    "recover_timeout_seconds": 20.0,
    "poll_seconds": 0.5,
}
RUN_CONFIG = {"ops": {"rehearsal__node_loss_drill": {"config": FAST}}}


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    warning = info


def _phase2_cluster(resources, worlds, crdbs):
    """The rehearsal world at the end of phase 2: 3 ready nodes, phase 2's zones, every range on target."""
    with world(worlds["rehearsal"]) as s:
        s["desired"] = s["ready"] = 3
    sql = resources["rehearsal_crdb"]
    sql.ensure_database()
    sql.run_script(SQL_DIR / "00-bootstrap.sql")
    for statement in zone_statements(PHASES[-1]):
        sql.execute(statement)
    crdbs["rehearsal"].settle()
    resources["rehearsal_sample_app"].set_background_load(True)  # what the rehearsal's preflight does
    return resources["rehearsal_cluster"].control(), resources["rehearsal_prometheus"], sql


def _run(resources, worlds, crdbs, **cfg):
    control, prom, sql = _phase2_cluster(resources, worlds, crdbs)
    return run_node_loss(control, prom, sql, PHASES[-1], NodeLossConfig(**{**FAST, **cfg}), REHEARSAL, Log())


def test_rehearse_runs_the_drills_after_phase_2_and_ends_with_the_report(resources, worlds, crdbs, bench):
    """The rehearse job end to end: reset, three phases over their 3 s windows, both drills and the report (~40-70 s);
    only a whole rehearsal shows the drills run after phase 2 and the report reads them."""
    # Scales take a few seconds, so phase 2's backup (AS OF SYSTEM TIME '-10s') holds the data phase 0 wrote.
    with world(worlds["rehearsal"]) as s:
        s["ready_after_polls"] = 100
    job = build_definitions(resources).resolve_job_def("rehearse")
    started = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, run_config=RUN_CONFIG, raise_on_error=False)
        checks = result.get_asset_check_evaluations()
        assert result.success, [c.description for c in checks if not c.passed]
        drill = result.asset_materializations_for_node("rehearsal__node_loss_drill")[0].metadata
        restore = result.asset_materializations_for_node("rehearsal__backup_restore_drill")[0].metadata
        report = result.asset_materializations_for_node("rehearsal__rehearsal_report")[0].metadata
    print(
        f"\nrehearse with drills: {time.monotonic() - started:.1f}s; node-loss drill "
        f"{drill['duration_seconds'].value:.1f}s (detect {drill['detect_seconds'].value:.1f}s, recover "
        f"{drill['recover_seconds'].value:.1f}s); restore drill {restore['drill_seconds'].value:.2f}s"
    )
    assert {c.check_name for c in checks} >= {
        "no_unavailable_range_during_drill",
        "live_nodes_dropped_during_drill",
        "node_back_within_timeout",
        "restored_row_counts_match",
        "rehearsal_verdict",
    }
    assert len(checks) == 18 + 7 + 3 + 1 and all(c.passed for c in checks)
    calls = read_world(worlds["rehearsal"])["calls"]
    assert calls["stop_node"] == 1 and calls["restart_node"] == 1
    assert (
        drill["recovered"].value is True
        and 0 < drill["detect_seconds"].value < FAST["detect_timeout_seconds"]
    )
    assert restore["restored_rows"].value == 12000 and restore["mismatches"].value == 0
    assert report["verdict_pass"].value == 1
    assert report["phase2_three_nodes_converge_seconds"].value >= 0
    assert report["phase2_three_nodes_backup_bytes"].value > 0
    assert "| phase2_three_nodes | 3 |" in report["report"].value
    assert "Verdict: **PASS**" in report["report"].value
    assert crdbs["live"].statements == []  # the live cluster was never touched
    assert "restore_check_app" not in crdbs["rehearsal"].databases


def test_the_checks_see_the_drop_and_the_recovery_in_prometheus(resources, worlds, crdbs):
    result = _run(resources, worlds, crdbs)
    assert result.recovered and result.node == 3
    assert result.sql_reads_during_outage >= 2 and result.sql_errors_during_outage == ()
    prom = resources["rehearsal_prometheus"]
    verdicts = {
        spec.name: drill_checks.judge_window(spec, prom, result) for spec in drill_checks.NODE_LOSS_CHECKS
    }
    assert all(v.passed for v in verdicts.values()), [
        v.description for v in verdicts.values() if not v.passed
    ]
    assert verdicts["live_nodes_dropped_during_drill"].metadata["value"].value == 2
    assert verdicts["live_nodes_back_after_drill"].metadata["value"].value == 3
    assert drill_checks.judge_recovered(result).passed
    # The same window, judged at the moment the node was away, is NOT healthy: the checks can fail.
    mid = node_loss.NodeLossResult(**{**result.__dict__, "ended_at": result.detected_at + 1})
    assert not drill_checks.judge_window(drill_checks.NODE_LOSS_CHECKS[2], prom, mid).passed
    assert not drill_checks.judge_window(drill_checks.NODE_LOSS_CHECKS[3], prom, mid).passed


def test_a_node_not_back_in_time_fails_the_checks_and_was_started_anyway(resources, worlds, crdbs):
    with world(worlds["rehearsal"]) as s:
        s["stuck_down"] = True  # it crash-loops: restart_node is called, the node never becomes ready
    started = time.monotonic()
    result = _run(resources, worlds, crdbs, recover_timeout_seconds=4.0)
    assert time.monotonic() - started < 30  # bounded by the timeouts
    assert read_world(worlds["rehearsal"])["calls"]["restart_node"] == 1
    assert not result.recovered and result.recover_seconds is None
    back = drill_checks.judge_recovered(result)
    assert (
        not back.passed and "NOT back within 4s" in back.description and "started anyway" in back.description
    )
    live = drill_checks.judge_window(
        drill_checks.NODE_LOSS_CHECKS[2], resources["rehearsal_prometheus"], result
    )
    assert not live.passed and live.metadata["value"].value == 2


def test_a_crash_mid_drill_still_brings_the_node_back(resources, worlds, crdbs, monkeypatch):
    def crash(drill):
        raise RuntimeError("run interrupted")

    monkeypatch.setattr(node_loss, "_hold_outage", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        _run(resources, worlds, crdbs)
    state = read_world(worlds["rehearsal"])
    assert state["calls"]["restart_node"] == 1 and "held_down" not in state


@pytest.mark.parametrize(
    ("cfg", "message"), [({"node": 1}, "refusing to stop node 1"), ({"node": 4}, "not one of nodes 2..3")]
)
def test_refused_before_anything_is_stopped(resources, worlds, crdbs, cfg, message):
    with pytest.raises(dg.Failure, match=message):
        _run(resources, worlds, crdbs, **cfg)
    assert "stop_node" not in read_world(worlds["rehearsal"])["calls"]


def test_refused_unless_the_cluster_is_whole(resources, worlds, crdbs):
    control, prom, sql = _phase2_cluster(resources, worlds, crdbs)
    with world(worlds["rehearsal"]) as s:
        s["desired"] = 3
        s["ready"] = 2
        s["polls_until_ready"] = 1000
    with pytest.raises(dg.Failure, match="not at 3 ready nodes"):
        run_node_loss(control, prom, sql, PHASES[-1], NodeLossConfig(**FAST), REHEARSAL, Log())
    assert "stop_node" not in read_world(worlds["rehearsal"])["calls"]


def test_refused_for_a_phase_that_tolerates_no_failure(resources, worlds, crdbs):
    control, prom, sql = _phase2_cluster(resources, worlds, crdbs)
    with pytest.raises(dg.Failure, match="tolerates no node failure"):
        run_node_loss(control, prom, sql, PHASES[1], NodeLossConfig(**FAST), REHEARSAL, Log())
    assert "stop_node" not in read_world(worlds["rehearsal"])["calls"]


def test_evolve_drills_only_when_enabled_and_only_after_phase_2(resources, worlds, crdbs, monkeypatch):
    """The whole evolve job (three phases, each judged over its 3 s windows) plus a node-loss drill that waits for the
    node's death and return in Prometheus: ~30-50 s, the drill's ordering after phase 2 needs all of it."""
    monkeypatch.setenv("EVOLUTION_NODE_LOSS_DRILL", "true")
    with world(worlds["live"]) as s:
        s["ready_after_polls"] = 20
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"node_loss_drill": {"config": FAST}}}
        )
        assert result.success
        starts = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert starts.index("node_loss_drill") > starts.index("phase2_three_nodes.verify_replication")
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 18 + 7 and all(c.passed for c in checks)
    assert read_world(worlds["live"])["calls"]["stop_node"] == 1
    assert "stop_node" not in read_world(worlds["rehearsal"])["calls"]  # never the rehearsal's nodes
