"""The latency gate against a real Prometheus scraping the real sample app (the pipeline bench).

Each test waits for the phase window to end (at least the bench's 5 s minimum) and for the baseline's history
in Prometheus (up to ~12 s on a bench started a moment ago): ~15-30 s each.
"""

from __future__ import annotations

import math

import dagster as dg
import pytest

from evolution_pipeline.assets import all_assets
from evolution_pipeline.checks import all_checks
from evolution_pipeline.latency import CHECK_NAME
from evolution_pipeline.phases import PHASES
from tests.pipeline.latency_support import reader_slowed_once_scaled, wait_app_history
from tests.pipeline.stand_ins import CLUSTER_LABEL, WINDOW_SECONDS

pytestmark = pytest.mark.slow

PHASE0 = PHASES[0].name
HISTORY = 12  # seconds of app history before a phase: more than its baseline (at least the 5 s minimum)


def _live_history(bench) -> None:
    from evolution_pipeline.environments import LIVE

    wait_app_history(bench.prometheus, CLUSTER_LABEL[LIVE], HISTORY)


def _latency(evaluations) -> dg.AssetCheckEvaluation:
    (e,) = [e for e in evaluations if e.check_name == CHECK_NAME]
    return e


def _meta(e: dg.AssetCheckEvaluation) -> dict:
    return {k: getattr(v, "value", getattr(v, "text", getattr(v, "url", v))) for k, v in e.metadata.items()}


def test_an_unchanged_phase_passes_judging_its_own_minutes(resources, worlds, bench):
    _live_history(bench)
    with dg.instance_for_test() as instance:
        result = dg.materialize(all_assets() + all_checks(), resources=resources, instance=instance,
                                selection=[dg.AssetKey(PHASE0)])
    state = result.output_for_node(PHASE0)
    check = _latency(result.get_asset_check_evaluations())
    m = _meta(check)
    assert check.passed, check.description
    # The phase window is the app checks' window: from the preflight (the app was serving) to the phase's end,
    # at least the bench's minimum; the baseline is the same length just before it.
    assert m["phase_start"] == state.app_serving_since == state.started_at
    assert m["phase_end"] == max(state.finished_at, state.started_at + WINDOW_SECONDS)
    length = math.floor(m["phase_end"] - m["phase_start"])
    assert (m["baseline_end"], m["baseline_start"]) == (m["phase_start"], m["phase_start"] - length)
    assert "just before the phase window" in m["baseline_rule"]
    for route in ("login", "search"):
        assert m[f"{route}_baseline_requests"] > 0 and m[f"{route}_phase_requests"] > 0
        assert m[f"{route}_phase_p99_ms"] <= m[f"{route}_p99_limit_ms"]
        assert m[f"{route}_phase_p95_ms"] <= m[f"{route}_phase_p99_ms"]
    assert "/login p99" in check.description and "/search p99" in check.description
    assert m["grafana"].startswith("http://grafana.test:3000/d/crdb-sample-app?")
    assert f"@ {m['phase_end']:.3f}" in m["query"] and 'cluster="crdb-test-live"' in m["query"]
    print(f"unchanged phase: {check.description}")


def _evolve():
    from tests.pipeline.stand_ins import evolve_job

    return evolve_job()


def test_a_slowed_reader_path_fails_the_phase_and_a_reexecution_judges_the_same_minutes(
        stand_in_env, worlds, bench):
    """The reader path (/search) slowed by 1.5 s from phase 0's scale step on: the check fails with the
    figures and phase 1 never starts. Re-executed from failure once the reader is fast again, the check judges
    the same two windows (the phase run's own), so it fails again with the same figures."""
    _live_history(bench)
    app = bench.apps["live"]
    recon = dg.reconstructable(_evolve)
    with dg.instance_for_test() as instance:
        with reader_slowed_once_scaled(app.pg, worlds["live"], 1.5) as slowed:
            first = dg.execute_job(recon, instance, asset_selection=[dg.AssetKey(PHASE0)])
        assert "at" in slowed, "the phase never scaled, so the reader was never slowed"
        assert not first.success
        check = _latency(first.get_asset_check_evaluations())
        m = _meta(check)
        assert not check.passed
        assert "/search p99" in check.description and "EXCEEDED" in check.description
        assert m["phase_start"] < slowed["at"] < m["phase_end"]
        # Every slowed /search falls in the app's (1 s, 2.5 s] latency bucket (sample_app/metrics.py), where
        # histogram_quantile puts the phase's p99 near 2.5 s however many requests came before the slowdown. The
        # baseline's p99 on busy cores can reach the (0.5 s, 1 s] bucket (969 ms seen with 4 workers on 2
        # cores): with the bench's 500 ms slack (stand_ins.py) the limit stays under 2 s all the same.
        assert m["search_phase_p99_ms"] > 2000 > m["search_p99_limit_ms"]
        # Only the reader path was slowed: the writer's p99 stays below the reader's (it is not judged here:
        # on 2 busy cores a 20-request p99 of /login can cross its own limit).
        assert m["login_phase_p99_ms"] < m["search_phase_p99_ms"]
        print(f"slowed phase: {check.description}")

        again = dg.execute_job(recon, instance,
                               reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance))
        check2 = _latency(again.get_asset_check_evaluations())
        m2 = _meta(check2)
    assert not again.success and not check2.passed
    windows = ("baseline_start", "baseline_end", "phase_start", "phase_end")
    assert [m2[k] for k in windows] == [m[k] for k in windows]
    assert m2["search_phase_p99_ms"] == m["search_phase_p99_ms"]
