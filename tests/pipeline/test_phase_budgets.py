"""A phase's budgets from its evolution file reach its blocking checks; unset ones keep the resource's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from evolution_pipeline import checks, latency
from evolution_pipeline.evolution.model import Budgets
from evolution_pipeline.latency import Figures
from evolution_pipeline.phases import PHASES
from evolution_pipeline.resources.grafana import GrafanaResource
from evolution_pipeline.resources.prometheus import PrometheusResource
from evolution_pipeline.state import PhaseState

PROM = PrometheusResource(cluster_label="crdb-live", app_error_budget=0.01, app_latency_ratio=2.0,
                          app_latency_slack_seconds=0.01)
PHASE = PHASES[1]


def state() -> PhaseState:
    return PhaseState(PHASE.name, PHASE.nodes, PHASE.data, PHASE.system, started_at=1000.0,
                      app_serving_since=1000.0, finished_at=1060.0, previous_phase="phase0_single_node")


@pytest.mark.parametrize("budget, ok_at_0_8_percent", [(None, True), (0.005, False)])
def test_the_error_check_judges_by_the_phases_budget(budget, ok_at_0_8_percent):
    phase = replace(PHASE, budgets=Budgets(error_ratio=budget))
    _query, ok, expectation = checks._app_errors(PROM, phase, state())
    assert ok(0.008) is ok_at_0_8_percent
    assert expectation == f"<= {budget or 0.01:g} (error budget)"


@pytest.mark.parametrize("budgets, passed, allowed", [
    (Budgets(), False, 2.0),  # 250 ms after 100 ms: over 2 x 100 + 10
    (Budgets(latency_ratio=3.0), True, 3.0),  # within 3 x 100 + 10
])
def test_the_latency_gate_judges_by_the_phases_ratio(monkeypatch, budgets, passed, allowed):
    measured = iter([Figures(500, {0.95: 0.09, 0.99: 0.10}), Figures(500, {0.95: 0.2, 0.99: 0.25})] * 2)
    monkeypatch.setattr(latency, "measure", lambda prom, route, span: next(measured))  # no Prometheus here
    result = latency.evaluate(PROM, GrafanaResource(url=""), "live", replace(PHASE, budgets=budgets), state(),
                              checks.app_window(PROM, state()))
    assert result.passed is passed, result.description
    assert result.metadata["ratio_allowed"].value == allowed
