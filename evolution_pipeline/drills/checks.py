"""Blocking checks of the drills and of the rehearsal report.

The node-loss and zone-loss drills share their checks (a zone is the node-loss drill with several nodes
away: `result.survivors`, `result.away`). They judge the drill's time window in Prometheus (pinned with `@ <end>`, drills/promql.py),
so they read every scrape of the window, not just the drill's own polls; the restore checks judge the
comparison the drill made. A check never passes by default: no data fails it, with the reason. Each drill's
checks are one step that evaluates them concurrently and can run any one alone (check_steps.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from ..check_steps import Check, checks_step
from ..environments import REHEARSAL, Environment
from ..resources.prometheus import PrometheusResource
from ..state_metadata import float_figures
from . import promql
from .backup_restore import DRILL_NAME as RESTORE
from .backup_restore import RestoreDrillResult
from .node_loss import DRILL_NAME as NODE_LOSS
from .node_loss import NodeLossResult
from .report import REPORT_NAME, RehearsalReport
from .zone_loss import DRILL_NAME as ZONE_LOSS
from .zone_loss import ZoneLossResult

OutageResult = NodeLossResult | ZoneLossResult


@dataclass(frozen=True)
class WindowCheck:
    name: str
    description: str
    # (prometheus, drill result) -> (query, predicate, expectation)
    build: Callable[[PrometheusResource, OutageResult], tuple[str, Callable[[float], bool], str]]


def _unavailable(prom, r):
    return (
        promql.max_over(prom, "ranges_unavailable", r.stopped_at, r.ended_at),
        lambda v: v == 0,
        "== 0 at every scrape",
    )


def _dropped(prom, r):
    return (
        promql.survivors_min(prom, r.stopped_at, r.ended_at, prom.check_poll_seconds),
        lambda v: v == r.survivors,
        f"== {r.survivors} (the survivors saw {r.away} gone)",
    )


def _back(prom, r):
    return (
        promql.instant(prom, "min", "liveness_livenodes", r.ended_at),
        lambda v: v == r.nodes,
        f"== {r.nodes}",
    )


def _underreplicated(prom, r):
    return promql.instant(prom, "sum", "ranges_underreplicated", r.ended_at), lambda v: v == 0, "== 0"


def _traffic(prom, r):
    return promql.requests(prom, r.stopped_at, r.ended_at), lambda v: v > 0, "> 0 requests"


def _errors(prom, r):
    budget = prom.app_error_budget
    return (
        promql.error_ratio(prom, r.stopped_at, r.ended_at),
        lambda v: v <= budget,
        f"<= {budget:g} (error budget)",
    )


NODE_LOSS_CHECKS = (
    WindowCheck(
        "no_unavailable_range_during_drill", "No range lost quorum at any scrape of the drill.", _unavailable
    ),
    WindowCheck("live_nodes_dropped_during_drill", "The surviving nodes saw one node gone.", _dropped),
    WindowCheck("live_nodes_back_after_drill", "Every node live again when the drill ended.", _back),
    WindowCheck(
        "no_underreplicated_after_drill",
        "Under-replicated ranges back to 0 after the node returned.",
        _underreplicated,
    ),
    WindowCheck(
        "app_kept_serving_during_drill", "The sample app's request counter grew during the drill.", _traffic
    ),
    WindowCheck(
        "app_error_budget_during_drill",
        "The sample app's 5xx ratio during the drill stayed within budget.",
        _errors,
    ),
)

# The same judgements, said of a zone: the survivors saw every node of the zone gone and back.
ZONE_LOSS_CHECKS = (
    WindowCheck("no_unavailable_range_during_drill",
                "No range lost quorum at any scrape while the zone was away.", _unavailable),
    WindowCheck("live_nodes_dropped_during_drill", "The surviving nodes saw every node of the zone gone.",
                _dropped),
    WindowCheck("live_nodes_back_after_drill", "Every node live again when the drill ended.", _back),
    WindowCheck("no_underreplicated_after_drill",
                "Under-replicated ranges back to 0 after the zone returned.", _underreplicated),
    WindowCheck("app_kept_serving_during_drill",
                "The sample app's request counter grew while the zone was away.", _traffic),
    WindowCheck("app_error_budget_during_drill",
                "The sample app's 5xx ratio while the zone was away stayed within budget.", _errors),
)


def judge_window(spec: WindowCheck, prom: PrometheusResource, result: OutageResult) -> dg.AssetCheckResult:
    query, ok, expectation = spec.build(prom, result)
    # The window is in the past: a value is final (never retried); only missing data is waited for.
    passed, reading, error = prom.wait_until(
        query,
        ok,
        timeout=prom.check_settle_seconds,
        interval=prom.check_poll_seconds,
        retry_failed_values=False,
    )
    metadata = {
        "query": dg.MetadataValue.text(query),
        "expected": expectation,
        "window_seconds": dg.MetadataValue.float(result.duration_seconds),
    }
    if reading is not None:
        metadata["value"] = dg.MetadataValue.float(float(reading.value))
    if passed:
        text = f"{spec.name}: {reading.value:g} {expectation}"
    elif error:
        text = f"{spec.name} FAILED: {error}"
        metadata["error"] = dg.MetadataValue.text(error)
    else:
        text = f"{spec.name} FAILED: value {reading.value:g}, expected {expectation}"
    return dg.AssetCheckResult(passed=passed, metadata=metadata, description=text + _back_note(result))


def _back_note(result: OutageResult) -> str:
    return (
        ""
        if result.recovered
        else (
            f" ({result.away} was not back within "
            f"{result.recover_timeout_seconds:g}s; it was started anyway)"
        )
    )


def judge_recovered(result: OutageResult) -> dg.AssetCheckResult:
    meta = {
        **float_figures({"detect_seconds": result.detect_seconds, "recover_seconds": result.recover_seconds,
                         "recover_timeout_seconds": result.recover_timeout_seconds}),
        "restart": result.restart_detail,
    }
    if result.recovered:
        return dg.AssetCheckResult(
            passed=True,
            metadata=meta,
            description=(
                f"{result.away} detected gone after {result.detect_seconds}s, back and on target after "
                f"{result.recover_seconds}s"
            ),
        )
    notes = "; ".join(result.notes) or "no detail"
    return dg.AssetCheckResult(
        passed=False,
        metadata=meta,
        description=(
            f"{result.away} was NOT back within {result.recover_timeout_seconds:g}s "
            "(it was started anyway: "
            f"{result.restart_detail or 'see the run log'}): {notes}"
        ),
    )


def judge_restore(kind: str, result: RestoreDrillResult) -> dg.AssetCheckResult:
    c = result.comparison
    if kind == "dropped":
        return dg.AssetCheckResult(
            passed=result.scratch_dropped,
            description=(
                f"scratch database {c.scratch} {'dropped' if result.scratch_dropped else 'STILL EXISTS'}"
            ),
        )
    wanted = "rows" if kind == "rows" else "id checksum"
    bad = [m for m in result.mismatches if (wanted in m) or "missing" in m]
    meta = {f"{t.table}_source_rows": t.rows for t in c.source_tables}
    meta |= {f"{t.table}_restored_rows": t.rows for t in c.restored_tables}
    if bad:
        return dg.AssetCheckResult(
            passed=False, metadata=meta, description="restore mismatch: " + "; ".join(bad)
        )
    return dg.AssetCheckResult(
        passed=True,
        metadata=meta,
        description=(
            f"{len(c.restored_tables)} table(s), {result.rows} rows: {wanted}s match the source as of "
            f"{c.backup_end_time}"
        ),
    )


def build_node_loss_checks(env: Environment) -> list[dg.AssetChecksDefinition]:
    return _outage_checks(env, NODE_LOSS, NODE_LOSS_CHECKS, "node-loss",
                          "The node was back, live and on target within recover_timeout_seconds.")


def build_zone_loss_checks(env: Environment) -> list[dg.AssetChecksDefinition]:
    return _outage_checks(env, ZONE_LOSS, ZONE_LOSS_CHECKS, "zone-loss",
                          "Every node of the zone was back, live and on target within recover_timeout_seconds.")


def _outage_checks(env: Environment, drill: str, specs: tuple[WindowCheck, ...], what: str, back: str
                   ) -> list[dg.AssetChecksDefinition]:
    """A drill's blocking checks as one step (check_steps.py: concurrent, each can run alone)."""
    checks = [Check(spec.name, spec.description, _window_judge(spec)) for spec in specs]
    checks.append(Check("node_back_within_timeout", back, lambda _context, result, _prom: judge_recovered(result)))
    return [checks_step(env.asset_key(drill), checks, resource_keys=(env.resource_key("prometheus"),),
                        description=f"The {what} drill's blocking checks ({env.name}), run "
                                    "concurrently in one step; select one to run it alone.")]


def _window_judge(spec: WindowCheck):
    def judge(_context, result: OutageResult, prom: PrometheusResource) -> dg.AssetCheckResult:
        return judge_window(spec, prom, result)

    return judge


RESTORE_CHECKS = (
    ("rows", "restored_row_counts_match", "Every table's row count equals the source's as of the backup."),
    ("ids", "restored_id_checksums_match", "Every table's id checksum equals the source's as of the backup."),
    ("dropped", "scratch_database_dropped", "The scratch database is gone again."),
)


def build_restore_checks() -> list[dg.AssetChecksDefinition]:
    checks = [Check(name, description, _restore_judge(kind)) for kind, name, description in RESTORE_CHECKS]
    return [checks_step(REHEARSAL.asset_key(RESTORE), checks,
                        description="The restore drill's blocking checks, in one step; select one to run "
                                    "it alone.")]


def _restore_judge(kind: str):
    return lambda _context, result: judge_restore(kind, result)


def build_report_checks() -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=REHEARSAL.asset_key(REPORT_NAME),
        name="rehearsal_verdict",
        blocking=True,
        description="The rehearsal report's verdict is PASS.",
    )
    def rehearsal_verdict(rehearsal_report: RehearsalReport) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=rehearsal_report.passed,
            description=rehearsal_report.verdict_text(),
            metadata={"verdict_pass": int(rehearsal_report.passed)},
        )

    return [rehearsal_verdict]
