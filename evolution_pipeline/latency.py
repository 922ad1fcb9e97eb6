"""Boring is good, as a gate: the sample app's latency during a phase against the minutes just before it.

The check `sample_app_latency` (one per phase asset, live and rehearsal, blocking; checks.py evaluates it in
the phase's checks step beside the five others) reads the app's request histogram
(app_request_duration_seconds, sample_app/metrics.py) in Prometheus for /login (the writer path) and /search
(the reader path), over two windows pinned with `@ <end>` like every phase check:

- the phase window: the same minutes the app's error checks judge (checks.app_window: from when the app could
  serve, or the phase started, to when it ended, at least min_window_seconds);
- the baseline: the same length just before it. When there is no "before" (the app first served during the
  phase: phase 0 on a fresh cluster, no database before apply_sql; or the rehearsal's first phase, whose app
  load starts in its preflight), the baseline is the same length right after the phase window, the app's own
  first steady minutes, and the check says so.

A route passes when phase p99 <= ratio x baseline p99 + slack. Defaults (PrometheusResource): ratio 2, slack
10 ms. Why: a 2x p99 is what a user starts to feel and what the demo's "graphs remain stable" can no longer
claim, while a topology change that adds one in-cluster replication round trip (phase 2's Raft quorum across
nodes) stays well under it; the slack absorbs the histogram's resolution at the fast end, where p99 is a few
ms: histogram_quantile interpolates inside buckets (..., 2.5, 5, 10, 25 ms), so one bucket step of noise moves
a 3 ms p99 to 6-8 ms, a ratio of 2+ that no user sees. 10 ms is still far below the 100 ms - 2 s regressions the
check exists to catch. p95 is shown beside p99, not judged.

No request of a route in either window fails the check with that reason (never a silent pass): a p99 of
nothing proves nothing. This module holds the arithmetic and the PromQL as plain functions (unit-tested); the
check's I/O (evaluate) is at the bottom.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import dagster as dg

from . import app_promql
from .environments import REHEARSAL
from .phases import Phase
from .resources.grafana import GrafanaResource
from .resources.prometheus import PrometheusQueryError, PrometheusResource
from .state import PhaseState

CHECK_NAME = "sample_app_latency"
DESCRIPTION = ("The sample app's p99 for /login and /search during the phase stayed within ratio x the baseline's "
               "p99 + slack (the same length just before the phase).")
ROUTES = ("/login", "/search")
QUANTILES = (0.95, 0.99)
JUDGED = 0.99
SAMPLE_APP_DASHBOARD = "crdb-sample-app"  # grafana/dashboards/sample-app.json
ANNOTATION_TAG = "crdb-latency-window"  # what the sample-app dashboard's annotation query selects


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    @property
    def seconds(self) -> int:
        # floor, as checks.Window: increase() over [seconds] @ end never reaches back before start.
        return math.floor(self.end - self.start)


@dataclass(frozen=True)
class Windows:
    baseline: Span
    phase: Span
    rule: str  # why the baseline is where it is, in words

    @property
    def baseline_after(self) -> bool:
        return self.baseline.start >= self.phase.end


def windows(phase: Span, after_because: str = "") -> Windows:
    """The baseline for a phase window: the same length just before it; or, given a reason there is no before,
    the same length right after it."""
    length = phase.seconds
    if after_because:
        return Windows(Span(phase.end, phase.end + length), phase,
                       f"{after_because}, so there is no before: the baseline is the {length} s right after the "
                       "phase window, the app's own first steady minutes")
    return Windows(Span(phase.start - length, phase.start), phase,
                   f"the {length} s just before the phase window (the same length)")


def no_before(env_name: str, state: PhaseState) -> str:
    """Why this phase has no "before" to compare with, else '': the app first served during it (a fresh
    cluster: no database before apply_sql), or it is the rehearsal's first phase (the rehearsal's app has no
    users: its load starts in this phase's preflight). Anything else has a before, and no traffic there fails."""
    if state.app_serving_since and state.app_serving_since > state.started_at:
        since = time.strftime("%H:%M:%S", time.gmtime(state.app_serving_since))
        return (f"the app first served during this phase (at {since} UTC, once apply_sql had created its "
                "database: a fresh cluster)")
    if env_name == REHEARSAL.name and state.previous_phase is None:
        return "the rehearsal's app has no users and its load starts in this phase's preflight"
    return ""


def _selector(prom: PrometheusResource, metric: str, route: str) -> str:
    return prom.app(metric, f'route="{route}"')


def quantile_query(prom: PrometheusResource, route: str, q: float, span: Span) -> str:
    sel = _selector(prom, "app_request_duration_seconds_bucket", route)
    window = f"[{span.seconds}s] {app_promql.at(span.end)}"
    return f"histogram_quantile({q:g}, sum by (le) (increase({sel}{window})))"


def count_query(prom: PrometheusResource, route: str, span: Span) -> str:
    sel = _selector(prom, "app_request_duration_seconds_count", route)
    return f"sum(increase({sel}[{span.seconds}s] {app_promql.at(span.end)}))"


@dataclass(frozen=True)
class Figures:
    """One route in one window: requests seen and percentiles in seconds (None: no figure)."""

    requests: float | None
    quantiles: dict[float, float | None]
    error: str = ""

    @property
    def p99(self) -> float | None:
        return self.quantiles.get(JUDGED)


@dataclass(frozen=True)
class RouteVerdict:
    route: str
    baseline: Figures
    phase: Figures
    limit: float | None  # seconds: ratio x baseline p99 + slack
    passed: bool
    reason: str


def limit_for(baseline_p99: float, ratio: float, slack: float) -> float:
    return ratio * baseline_p99 + slack


def judge_route(route: str, baseline: Figures, phase: Figures, ratio: float, slack: float) -> RouteVerdict:
    """Pure: the verdict for one route from its figures in both windows."""
    for name, f in (("baseline", baseline), ("phase", phase)):
        if f.error:
            return RouteVerdict(route, baseline, phase, None, False, f"{route}: {name} window unreadable: {f.error}")
        if not f.requests or f.p99 is None:
            return RouteVerdict(route, baseline, phase, None, False,
                                f"{route}: no requests in the {name} window, so no latency to judge")
    limit = limit_for(baseline.p99, ratio, slack)
    figures = (f"{route} p99 {ms(phase.p99)} ms in the phase vs {ms(baseline.p99)} ms before "
               f"(limit {ratio:g} x {ms(baseline.p99)} + {ms(slack)} = {ms(limit)} ms)")
    if phase.p99 <= limit:
        return RouteVerdict(route, baseline, phase, limit, True, figures)
    return RouteVerdict(route, baseline, phase, limit, False, figures + " EXCEEDED")


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}"


def validate(ratio: float, slack: float) -> str:
    """A setting that would make the gate meaningless is an error, not a silent pass."""
    if not (math.isfinite(ratio) and ratio >= 1):
        return f"app_latency_ratio={ratio!r}: use a number >= 1 (2 means the phase's p99 may double)"
    if not (math.isfinite(slack) and 0 <= slack <= 1):
        return f"app_latency_slack_seconds={slack!r}: use seconds between 0 and 1 (0.01 = 10 ms)"
    return ""


def slug(route: str) -> str:
    return route.strip("/").replace("/", "_") or "root"


def summary_markdown(verdicts: list[RouteVerdict], w: Windows, ratio: float, slack: float) -> str:
    """Baseline and phase side by side, as the check's metadata and the rehearsal report show them."""
    lines = ["| route | window | requests | p95 (ms) | p99 (ms) | limit (ms) | verdict |",
             "|---|---|---:|---:|---:|---:|---|"]
    for v in verdicts:
        for name, f in (("baseline", v.baseline), ("phase", v.phase)):
            limit = ms(v.limit) if name == "phase" else ""
            verdict = ("pass" if v.passed else "FAIL") if name == "phase" else ""
            requests = "n/a" if f.requests is None else f"{f.requests:.0f}"
            lines.append(f"| {v.route} | {name} | {requests} | {ms(f.quantiles.get(0.95))} | {ms(f.p99)} "
                         f"| {limit} | {verdict} |")
    lines += ["", f"Limit: phase p99 <= {ratio:g} x baseline p99 + {ms(slack)} ms. Baseline: {w.rule}."]
    return "\n".join(lines)


def figure_metadata(verdicts: list[RouteVerdict]) -> dict[str, float]:
    """Numeric figures (milliseconds, requests, ratios) for Dagster to plot across runs; missing ones left out."""
    out: dict[str, float] = {}
    for v in verdicts:
        s = slug(v.route)
        for name, f in (("baseline", v.baseline), ("phase", v.phase)):
            if f.requests is not None:
                out[f"{s}_{name}_requests"] = float(f.requests)
            for q, value in f.quantiles.items():
                if value is not None:
                    out[f"{s}_{name}_p{round(q * 100)}_ms"] = round(value * 1000, 3)
        if v.limit is not None:
            out[f"{s}_p99_limit_ms"] = round(v.limit * 1000, 3)
        if v.phase.p99 is not None and v.baseline.p99:
            out[f"{s}_p99_ratio"] = round(v.phase.p99 / v.baseline.p99, 3)
    return out


# --- reading Prometheus and the check ------------------------------------------------------------------------

def _wait_for(instant: float) -> None:
    if (ahead := instant - time.time()) > 0:
        time.sleep(ahead)


def _optional(prom: PrometheusResource, expr: str) -> float | None:
    value = prom.query_value(expr).value
    return None if math.isnan(value) else value


def measure(prom: PrometheusResource, route: str, span: Span) -> Figures:
    """The route's figures in a window already over. A zero count is waited for until check_settle_seconds
    after the window ended (its last scrapes may not be in yet); then it is final."""
    _wait_for(span.end)
    passed, reading, error = prom.wait_until(count_query(prom, route, span), lambda v: v > 0,
                                             timeout=max(0.0, span.end + prom.check_settle_seconds - time.time()),
                                             interval=prom.check_poll_seconds)
    if reading is None:
        return Figures(None, {}, error or "no reading")
    if not passed:
        return Figures(reading.value, dict.fromkeys(QUANTILES))
    try:
        quantiles = {q: _optional(prom, quantile_query(prom, route, q, span)) for q in QUANTILES}
    except PrometheusQueryError as exc:
        return Figures(reading.value, {}, str(exc))
    return Figures(reading.value, quantiles)


def evaluate(prom: PrometheusResource, grafana: GrafanaResource, env_name: str, phase: Phase, state: PhaseState,
             phase_window) -> dg.AssetCheckResult:
    # The phase's own budget from its evolution file, else the resource's settings.
    ratio, slack = phase.budgets.latency(prom.app_latency_ratio, prom.app_latency_slack_seconds)
    if invalid := validate(ratio, slack):
        return _result(False, f"{CHECK_NAME} FAILED for {phase.name}: {invalid}", {})
    w = windows(Span(phase_window.start, phase_window.end), no_before(env_name, state))
    verdicts = [judge_route(r, measure(prom, r, w.baseline), measure(prom, r, w.phase), ratio, slack)
                for r in ROUTES]
    metadata = _window_metadata(prom, w, ratio, slack)
    metadata |= {k: dg.MetadataValue.float(v) for k, v in figure_metadata(verdicts).items()}
    metadata["summary"] = dg.MetadataValue.md(summary_markdown(verdicts, w, ratio, slack))
    first, last = min(w.baseline.start, w.phase.start), max(w.baseline.end, w.phase.end)
    if link := grafana.link(first, last, dashboard_uid=SAMPLE_APP_DASHBOARD):
        metadata["grafana"] = dg.MetadataValue.url(link)
    metadata["grafana_annotations"] = dg.MetadataValue.text(_annotate(grafana, env_name, phase, w))
    passed = all(v.passed for v in verdicts)
    verdict = "; ".join(v.reason for v in verdicts if passed or not v.passed)
    text = f"{CHECK_NAME}: {verdict}" if passed else f"{CHECK_NAME} FAILED for {phase.name}: {verdict}"
    return _result(passed, f"{text}. Baseline: {w.rule}.", metadata)


def _window_metadata(prom: PrometheusResource, w: Windows, ratio: float, slack: float) -> dict:
    return {
        "baseline_start": dg.MetadataValue.timestamp(w.baseline.start),
        "baseline_end": dg.MetadataValue.timestamp(w.baseline.end),
        "phase_start": dg.MetadataValue.timestamp(w.phase.start),
        "phase_end": dg.MetadataValue.timestamp(w.phase.end),
        "baseline_rule": dg.MetadataValue.text(w.rule),
        "ratio_allowed": dg.MetadataValue.float(ratio),
        "slack_ms": dg.MetadataValue.float(slack * 1000),
        "query": dg.MetadataValue.text(_queries(prom, w)),  # every query, as each phase check's "query"
    }


def _result(passed: bool, description: str, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                               description=description)


def _queries(prom: PrometheusResource, w: Windows) -> str:
    lines = []
    for route in ROUTES:
        for name, span in (("baseline", w.baseline), ("phase", w.phase)):
            lines += [f"# {route}, {name}", count_query(prom, route, span),
                      quantile_query(prom, route, JUDGED, span)]
    return "\n".join(lines)


def _annotate(grafana: GrafanaResource, env_name: str, phase: Phase, w: Windows) -> str:
    """Both windows as region annotations on the sample-app dashboard, for the presenter to point at. Never the
    tags "crdb-evolution" or "phase": the evolution dashboard shows any annotation with either (matchAny)."""
    notes = []
    for name, span in (("baseline", w.baseline), ("phase", w.phase)):
        notes.append(grafana.annotate(span.start, span.end, f"{phase.name} ({env_name}): latency {name} window",
                                      [f"latency-{name}", phase.name, env_name],
                                      base_tags=(ANNOTATION_TAG,)))
    return "; ".join(notes)
