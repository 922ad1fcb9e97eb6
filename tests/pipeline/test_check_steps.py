"""One step per asset's checks (evolution_pipeline/check_steps.py), on real Dagster: the checks run at the
same time, each reports even when another fails or raises, a failed blocking check holds back what is
downstream, and one check can run alone (what the UI's "Execute" on a single check launches)."""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from evolution_pipeline.check_steps import Check, checks_step

NAMES = ("first", "second", "third")


@dg.asset
def judged() -> int:
    return 3


@dg.asset
def downstream(judged: int) -> int:
    return judged + 1


def _checks(judge_for) -> dg.AssetChecksDefinition:
    return checks_step(judged.key, [Check(n, f"the {n} check", judge_for(n)) for n in NAMES],
                       description="three checks")


def _evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_the_checks_run_at_the_same_time_and_a_failed_one_blocks_downstream():
    # Every judge waits at a barrier for all three: one after another, the first would wait in vain.
    barrier = threading.Barrier(len(NAMES), timeout=20)

    def judge_for(name):
        def judge(_context, value):
            barrier.wait()
            return dg.AssetCheckResult(passed=name != "second", description=f"{name} saw {value}")
        return judge

    result = dg.materialize([judged, downstream, _checks(judge_for)], raise_on_error=False)
    evaluations = _evaluations(result)
    assert set(evaluations) == set(NAMES), "every check reports, the failed one included"
    assert [n for n, e in evaluations.items() if not e.passed] == ["second"]
    assert evaluations["first"].description == "first saw 3"
    assert all(e.blocking for e in evaluations.values())
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["judged_checks"]
    assert "judged: second" in failures[0].step_failure_data.error.message
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {judged.key}, "the failed blocking check held back the downstream asset"


def test_a_check_that_raises_lets_the_others_report_then_fails_the_step():
    def judge_for(name):
        def judge(_context, _value):
            if name == "third":
                raise ValueError("Prometheus answered nonsense")
            return dg.AssetCheckResult(passed=True)
        return judge

    result = dg.materialize([judged, _checks(judge_for)], raise_on_error=False)
    assert set(_evaluations(result)) == {"first", "second"}
    [failure] = [e for e in result.all_events if e.is_step_failure]
    cause = failure.step_failure_data.error.cause  # Dagster wraps what the op raised, as for any op
    assert cause.cls_name == "ValueError" and "Prometheus answered nonsense" in cause.message
    assert "raised by check 'third' of judged" in cause.message, cause.message


@pytest.mark.parametrize("alone", NAMES)
def test_one_check_runs_alone(alone):
    called: list[str] = []

    def judge_for(name):
        def judge(_context, value):
            called.append(name)
            return dg.AssetCheckResult(passed=True, description=f"{name} saw {value}")
        return judge

    defs = dg.Definitions(assets=[judged], asset_checks=[_checks(judge_for)])
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize([judged], instance=instance).success
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={dg.AssetCheckKey(judged.key, alone)})
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert called == [alone], "only the selected check was evaluated"
    assert list(_evaluations(result)) == [alone]
    assert _evaluations(result)[alone].description == f"{alone} saw 3"  # the stored value, loaded
