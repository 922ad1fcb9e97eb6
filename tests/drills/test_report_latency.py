"""The rehearsal report shows each phase's latency gate as its check judged it: baseline and phase side by
side, the verdict, the figures plotted; a failed gate fails the report's verdict."""

from __future__ import annotations

import dagster as dg

from evolution_pipeline.drills.outcomes import LatencyOutcome, latency_outcomes
from evolution_pipeline.drills.report import RehearsalReport, metadata, render
from evolution_pipeline.latency import CHECK_NAME

SUMMARY = ("| route | window | requests | p95 (ms) | p99 (ms) | limit (ms) | verdict |\n|---|---|---:|---:|---:|---:|---|\n"
           "| /search | baseline | 80 | 4.0 | 5.0 |  |  |\n| /search | phase | 79 | 200.0 | 250.0 | 20.0 | FAIL |")


def _report(*outcomes: LatencyOutcome) -> RehearsalReport:
    reasons = tuple(f"{o.phase}: {o.description}" for o in outcomes if not o.passed)
    return RehearsalReport((), (), reasons, 0.01, outcomes)


def test_the_report_puts_baseline_and_phase_side_by_side_and_fails_on_a_failed_gate():
    failed = LatencyOutcome("phase1_two_nodes", False, "/search p99 250.0 ms ... EXCEEDED", SUMMARY,
                            {"search_phase_p99_ms": 250.0, "search_baseline_p99_ms": 5.0})
    report = _report(LatencyOutcome("phase0_single_node", True, "ok", "| table |", {"login_phase_p99_ms": 3.0}),
                     failed)
    md = render(report)
    assert "### phase1_two_nodes: app latency FAIL" in md and SUMMARY in md
    assert "### phase0_single_node: app latency pass" in md
    assert not report.passed and "EXCEEDED" in report.verdict_text()
    meta = metadata(report)
    assert meta["phase1_two_nodes_search_phase_p99_ms"] == dg.MetadataValue.float(250.0)
    assert meta["phase1_two_nodes_latency_pass"] == 0 and meta["phase0_single_node_latency_pass"] == 1


def test_outcomes_are_read_from_the_run_as_the_check_recorded_them():
    key = dg.AssetKey(["rehearsal", "phase1_two_nodes"])

    @dg.asset(key=key)
    def phase():
        return 1

    @dg.asset_check(asset=key, name=CHECK_NAME)
    def gate():
        return dg.AssetCheckResult(passed=False, description="/search EXCEEDED", metadata={
            "summary": dg.MetadataValue.md(SUMMARY), "search_phase_p99_ms": 250.0, "search_p99_ratio": 50.0,
            "phase_start": dg.MetadataValue.timestamp(1000.0), "baseline_rule": "the 5 s just before"})

    with dg.DagsterInstance.ephemeral() as instance:
        run = dg.materialize([phase, gate], instance=instance)
        (o,) = latency_outcomes(instance, run.run_id, {"phase0_single_node": dg.AssetKey(["rehearsal", "x"]),
                                                       "phase1_two_nodes": key})
    assert (o.phase, o.passed, o.description, o.summary) == ("phase1_two_nodes", False, "/search EXCEEDED", SUMMARY)
    assert o.figures == {"search_phase_p99_ms": 250.0, "search_p99_ratio": 50.0}
