"""The latency gate's rules as plain functions: windows, the limit, the verdict, what it records."""

from __future__ import annotations

import math

import pytest

from evolution_pipeline.latency import (
    Figures,
    Span,
    count_query,
    figure_metadata,
    judge_route,
    no_before,
    quantile_query,
    summary_markdown,
    validate,
    windows,
)
from evolution_pipeline.phases import PHASES
from evolution_pipeline.resources.prometheus import PrometheusResource
from evolution_pipeline.state import PhaseState

PROM = PrometheusResource(cluster_label="crdb-live")


def figures(requests, p95, p99):
    return Figures(requests, {0.95: p95, 0.99: p99})


def state(started_at=1000.0, serving=1000.0, previous="phase0_single_node"):
    p = PHASES[1]
    return PhaseState(p.name, p.nodes, p.data, p.system, started_at=started_at, app_serving_since=serving,
                      previous_phase=previous)


def test_baseline_is_the_same_length_just_before_the_phase():
    w = windows(Span(1000.0, 1090.7))
    assert (w.phase.seconds, w.baseline) == (90, Span(910.0, 1000.0))
    assert not w.baseline_after and "just before" in w.rule


def test_without_a_before_the_baseline_is_right_after_and_says_why():
    w = windows(Span(1000.0, 1060.0), "the app first served during this phase")
    assert w.baseline == Span(1060.0, 1120.0) and w.baseline_after
    assert w.rule.startswith("the app first served during this phase, so there is no before")


def test_which_phases_have_no_before():
    assert no_before("live", state()) == ""
    assert no_before("rehearsal", state()) == ""  # phase 1 of the rehearsal: phase 0's minutes are its before
    fresh = no_before("live", state(started_at=1000.0, serving=1042.0))
    assert "first served during this phase" in fresh and "fresh cluster" in fresh
    assert "load starts" in no_before("rehearsal", state(previous=None))
    assert no_before("live", state(previous=None)) == ""  # the live app's users never stop


def test_queries_are_pinned_to_the_window_and_scoped_to_the_cluster():
    span = Span(1000.0, 1060.0)
    q = quantile_query(PROM, "/search", 0.99, span)
    assert q == ('histogram_quantile(0.99, sum by (le) (increase(app_request_duration_seconds_bucket'
                 '{job="sample-app",cluster="crdb-live",route="/search"}[60s] @ 1060.000)))')
    assert count_query(PROM, "/login", span).endswith('route="/login"}[60s] @ 1060.000))')


@pytest.mark.parametrize("phase_p99, passed", [(0.0160, True), (0.0161, False), (0.002, True), (2.0, False)])
def test_limit_is_ratio_times_baseline_plus_slack(phase_p99, passed):
    v = judge_route("/search", figures(500, 0.002, 0.003), figures(480, 0.004, phase_p99), 2.0, 0.010)
    assert v.passed is passed and math.isclose(v.limit, 0.016)
    assert "p99" in v.reason and "limit 2 x 3.0 + 10.0 = 16.0 ms" in v.reason
    assert v.reason.endswith("EXCEEDED") is not passed


@pytest.mark.parametrize("baseline, phase, words", [
    (figures(0, None, None), figures(100, 0.01, 0.02), "no requests in the baseline window"),
    (figures(100, 0.01, 0.02), figures(0.0, None, None), "no requests in the phase window"),
    (figures(None, None, None), figures(100, 0.01, 0.02), "no requests in the baseline window"),
    (Figures(None, {}, "Prometheus at x is unreachable"), figures(100, 0.01, 0.02), "baseline window unreadable"),
])
def test_no_traffic_or_no_prometheus_fails_with_the_reason(baseline, phase, words):
    v = judge_route("/login", baseline, phase, 2.0, 0.010)
    assert not v.passed and words in v.reason and v.limit is None


def test_settings_that_would_make_the_gate_meaningless_are_refused():
    assert validate(2.0, 0.01) == ""
    assert "ratio" in validate(0.5, 0.01) and "ratio" in validate(float("nan"), 0.01)
    assert "slack" in validate(2.0, -1) and "slack" in validate(2.0, 5)


def test_metadata_plots_each_figure_and_leaves_out_the_missing():
    ok = judge_route("/login", figures(40, 0.002, 0.004), figures(42, 0.003, 0.005), 2.0, 0.01)
    empty = judge_route("/search", figures(0, None, None), figures(10, 0.01, 0.02), 2.0, 0.01)
    md = figure_metadata([ok, empty])
    assert md["login_baseline_p99_ms"] == 4.0 and md["login_phase_p95_ms"] == 3.0
    assert md["login_p99_ratio"] == 1.25 and md["login_p99_limit_ms"] == 18.0
    assert md["search_baseline_requests"] == 0.0 and "search_baseline_p99_ms" not in md
    assert "search_p99_ratio" not in md and "search_p99_limit_ms" not in md


def test_summary_shows_baseline_and_phase_side_by_side():
    v = judge_route("/search", figures(500, 0.002, 0.003), figures(480, 0.2, 0.25), 2.0, 0.010)
    text = summary_markdown([v], windows(Span(0.0, 60.0)), 2.0, 0.010)
    assert "| /search | baseline | 500 | 2.0 | 3.0 |  |  |" in text
    assert "| /search | phase | 480 | 200.0 | 250.0 | 16.0 | FAIL |" in text
    assert "2 x baseline p99 + 10.0 ms" in text


def test_both_windows_are_annotated_where_the_sample_app_dashboard_looks(monkeypatch):
    import json
    from pathlib import Path

    from evolution_pipeline.latency import ANNOTATION_TAG, SAMPLE_APP_DASHBOARD, _annotate
    from evolution_pipeline.resources.grafana import GrafanaResource
    from tests.doubles.grafana_api import GrafanaApiDouble

    double = GrafanaApiDouble(token="sa-token-for-tests")
    try:
        grafana = GrafanaResource(url=double.url, api_token="sa-token-for-tests")
        note = _annotate(grafana, "live", PHASES[1], windows(Span(1000.0, 1060.0)))
        bodies = double.annotations
    finally:
        double.close()
    assert note.count("annotated") == 2
    assert [(b["time"], b["timeEnd"], b["tags"]) for b in bodies] == [
        (940000, 1000000, [ANNOTATION_TAG, "latency-baseline", PHASES[1].name, "live"]),
        (1000000, 1060000, [ANNOTATION_TAG, "latency-phase", PHASES[1].name, "live"])]
    dashboard = json.loads((Path(__file__).parents[2] / "grafana/dashboards/sample-app.json").read_text())
    assert dashboard["uid"] == SAMPLE_APP_DASHBOARD
    queries = [a["target"] for a in dashboard["annotations"]["list"] if a.get("target", {}).get("type") == "tags"]
    # matchAny false: an annotation shows when it has every tag of the query. The evolution dashboard shows any
    # annotation tagged crdb-evolution or phase (matchAny): the latency windows carry neither.
    assert not {"crdb-evolution", "phase"} & {t for b in bodies for t in b["tags"]}
    assert any(q["tags"] == [ANNOTATION_TAG] and not q["matchAny"] for q in queries)
