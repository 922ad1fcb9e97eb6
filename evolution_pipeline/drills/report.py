"""The rehearsal report: the story of the night in one table (the asset itself: report_asset.py).

Per phase: converge seconds, the backup (size, rows, verified WITH check_files), the app's p50/p99 latency and
5xx ratio during the phase (Prometheus, pinned to the phase's window); then the drills' results (node
loss, backup restore, and zone loss when the last phase claims to survive a zone), and a
PASS/FAIL verdict with its reasons (a phase not reached, a drill that failed or never ran, a failed check
included). Every figure is also numeric metadata, so Dagster plots it across nights; a figure that does not
exist is left out (never -1, which would plot as a real point). Its blocking check `rehearsal_verdict` fails
the run on FAIL, which the failure sensor reports.
"""

import math
from dataclasses import dataclass

import dagster as dg

from ..resources.prometheus import PrometheusQueryError, PrometheusResource
from ..state import PhaseState
from ..state_metadata import float_figures
from . import promql

REPORT_NAME = "rehearsal_report"


@dataclass(frozen=True)
class PhaseFigures:
    phase: str
    nodes: int
    converge_seconds: float | None
    backup_status: str
    backup_bytes: int | None
    backup_rows: int | None
    backup_verified: bool  # SHOW BACKUP ... WITH check_files answered (file_bytes known)
    p50_seconds: float | None
    p99_seconds: float | None
    error_ratio: float | None


@dataclass(frozen=True)
class DrillFigures:
    name: str
    passed: bool
    summary: str
    figures: dict  # name -> number, None when the figure does not exist


@dataclass(frozen=True)
class RehearsalReport:
    phases: tuple[PhaseFigures, ...]
    drills: tuple[DrillFigures, ...]
    reasons: tuple[str, ...]  # why the verdict is FAIL; empty on PASS
    error_budget: float
    latency: tuple = ()  # outcomes.LatencyOutcome per phase judged: the latency gate, baseline vs phase

    @property
    def passed(self) -> bool:
        return not self.reasons

    def verdict_text(self) -> str:
        return "PASS" if self.passed else "FAIL: " + "; ".join(self.reasons)


def _value(prom: PrometheusResource, expr: str) -> float | None:
    """One figure, or None when Prometheus has none (NaN: a quantile over no requests)."""
    try:
        value = prom.query_value(expr).value
    except PrometheusQueryError:
        return None
    return None if math.isnan(value) else value


def phase_figures(prom: PrometheusResource, state: PhaseState) -> PhaseFigures:
    start = state.app_serving_since or state.started_at
    end = state.finished_at or start
    b = state.backup
    return PhaseFigures(
        phase=state.phase,
        nodes=state.nodes,
        converge_seconds=state.converge_seconds,
        backup_status=b.status if b else "none",
        backup_bytes=b.size_bytes if b else None,
        backup_rows=b.rows if b else None,
        backup_verified=bool(b and b.file_bytes is not None),
        p50_seconds=_value(prom, promql.latency_quantile(prom, 0.5, start, end)),
        p99_seconds=_value(prom, promql.latency_quantile(prom, 0.99, start, end)),
        error_ratio=_value(prom, promql.error_ratio(prom, start, end)),
    )


def verdict_reasons(phases: list[PhaseFigures], drills: list[DrillFigures], budget: float) -> list[str]:
    reasons = []
    for p in phases:
        if p.error_ratio is None:
            reasons.append(f"{p.phase}: no 5xx ratio in Prometheus (no app traffic scraped)")
        elif p.error_ratio > budget:
            reasons.append(f"{p.phase}: 5xx ratio {p.error_ratio:.4f} over the budget {budget:g}")
        if p.backup_status in ("taken", "reused") and not p.backup_verified:
            reasons.append(f"{p.phase}: backup not verified WITH check_files")
    reasons += [f"{d.name}: {d.summary}" for d in drills if not d.passed]
    return reasons


def render(report: RehearsalReport) -> str:
    """The Markdown the UI shows."""
    lines = [
        f"## Rehearsal: {'PASS' if report.passed else 'FAIL'}",
        "",
        ("| phase | nodes | converge (s) | backup | backup size (bytes) | backup rows | p50 (ms) | p99 (ms) "
         "| 5xx ratio |"),
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for p in report.phases:
        backup = p.backup_status + (" (files checked)" if p.backup_verified else "")
        lines.append(
            f"| {p.phase} | {p.nodes} | {_fmt(p.converge_seconds, '.1f')} | {backup} "
            f"| {_fmt(p.backup_bytes)} | {_fmt(p.backup_rows)} | {_ms(p.p50_seconds)} | {_ms(p.p99_seconds)} "
            f"| {_fmt(p.error_ratio, '.4f')} |"
        )
    lines += ["", "| drill | result | figures |", "|---|---|---|"]
    for d in report.drills:
        figures = ", ".join(f"{k} {_fmt(v, 'g')}" for k, v in d.figures.items())
        lines.append(f"| {d.name} | {'pass' if d.passed else 'FAIL'}: {d.summary} | {figures} |")
    for o in report.latency:  # the latency gate: baseline and phase side by side, with its verdict
        lines += ["", f"### {o.phase}: app latency {'pass' if o.passed else 'FAIL'}", "", o.summary or o.description]
    lines += ["", f"Error budget: {report.error_budget:g}. Verdict: **{report.verdict_text()}**"]
    return "\n".join(lines)


def _fmt(value, spec: str = "d") -> str:
    if value is None:
        return "n/a"
    return format(value, spec) if spec != "d" else str(value)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}"


def metadata(report: RehearsalReport) -> dict:
    out: dict = {
        "report": dg.MetadataValue.md(render(report)),
        "verdict_pass": int(report.passed),
        "verdict": report.verdict_text(),
    }
    for p in report.phases:
        out |= float_figures({
            "converge_seconds": p.converge_seconds, "backup_bytes": p.backup_bytes, "backup_rows": p.backup_rows,
            "p50_seconds": p.p50_seconds, "p99_seconds": p.p99_seconds, "error_ratio": p.error_ratio,
        }, prefix=f"{p.phase}_")
    for d in report.drills:
        out |= float_figures(d.figures, prefix=f"{d.name}_")
        out[f"{d.name}_pass"] = int(d.passed)
    for o in report.latency:
        out |= float_figures(o.figures, prefix=f"{o.phase}_")
        out[f"{o.phase}_latency_pass"] = int(o.passed)
    return out


def node_loss_figures(result) -> DrillFigures:
    ok = result.recovered and result.detect_seconds is not None and not (result.max_unavailable_seen or 0)
    summary = (
        f"node {result.node} away {result.duration_seconds:g}s, detected after {result.detect_seconds}s, "
        f"recovered after {result.recover_seconds}s"
        if ok
        else "; ".join(result.notes) or f"node {result.node} not recovered"
    )
    return DrillFigures(
        "node_loss_drill",
        ok,
        summary,
        {
            "detect_seconds": _or(result.detect_seconds),
            "recover_seconds": _or(result.recover_seconds),
            "duration_seconds": result.duration_seconds,
            "max_unavailable_seen": _or(result.max_unavailable_seen),
        },
    )


def zone_loss_figures(result) -> DrillFigures:
    """The zone-loss drill's row: time to detect the zone gone and to recover from it, and the worst count of
    unavailable ranges the drill's own polls saw (the checks judged every scrape)."""
    ok = result.recovered and result.detect_seconds is not None and not (result.max_unavailable_seen or 0)
    summary = (
        f"{result.away} away {result.duration_seconds:g}s, detected after {result.detect_seconds}s, "
        f"recovered after {result.recover_seconds}s"
        if ok
        else "; ".join(result.notes) or f"{result.away} not recovered"
    )
    return DrillFigures(
        "zone_loss_drill",
        ok,
        summary,
        {
            "detect_seconds": _or(result.detect_seconds),
            "recover_seconds": _or(result.recover_seconds),
            "duration_seconds": result.duration_seconds,
            "max_unavailable_seen": _or(result.max_unavailable_seen),
            "nodes_stopped": len(result.stopped_nodes),
        },
    )


def restore_figures(result) -> DrillFigures:
    bad = result.mismatches
    ok = not bad and result.scratch_dropped
    summary = (
        f"{result.rows} rows in {len(result.comparison.restored_tables)} table(s) match the source"
        if ok
        else "; ".join(bad) or "scratch database not dropped"
    )
    return DrillFigures(
        "backup_restore_drill",
        ok,
        summary,
        {
            "restore_seconds": result.comparison.restore_seconds,
            "drill_seconds": result.seconds,
            "rows": result.rows,
            "mismatches": len(bad),
        },
    )


def _or(value) -> float | None:
    return None if value is None else float(value)


def build_report(
    prom: PrometheusResource, states: list[PhaseState], drills: list[DrillFigures], latency: list | None = None,
    more_reasons: list[str] | None = None,
) -> RehearsalReport:
    """more_reasons: what the run itself says went wrong (a phase not reached, a step that failed, a check
    that failed: report_asset.py), after the figures' own reasons."""
    phases = [phase_figures(prom, s) for s in states]
    reasons = verdict_reasons(phases, drills, prom.app_error_budget)
    reasons += [f"{o.phase}: {o.description}" for o in latency or [] if not o.passed]
    reasons += more_reasons or []
    return RehearsalReport(tuple(phases), tuple(drills), tuple(reasons), prom.app_error_budget,
                           tuple(latency or ()))
