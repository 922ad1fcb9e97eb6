"""Runs that share only the instance, as on Kubernetes (tests/pipeline/pods.py): each run in its own "pod"
(its own DAGSTER_HOME) on one real PostgreSQL run/event storage, through dagster-postgres as the chart deploys it.

The presenter's path: phases 0, 1 and 2 each launched on its own, phase 1's verify_replication failing and
re-executed from failure in a new pod, and `evolve` end to end, with a check re-executed later in yet another
pod judging the same minutes as the first time.
"""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.phases import PHASES
from tests.doubles.pipeline_world import read_world
from tests.pipeline.pods import SharedInstanceDatabase, pod

pytestmark = pytest.mark.slow

KEYS = [dg.AssetKey(p.name) for p in PHASES]
BACKUPS = r"^\s*BACKUP INTO"
EARLY_STEPS = ("preflight", "backup", "scale", "apply_sql")


def _evolve():
    from tests.pipeline.stand_ins import evolve_job

    return evolve_job()


@pytest.fixture(scope="module")
def shared_db():
    db = SharedInstanceDatabase()
    yield db
    db.close()


@pytest.fixture
def instance_db(shared_db) -> str:
    return shared_db.new_database()


def _executed_steps(instance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return {r.event_log_entry.dagster_event.step_key for r in records}


def _failures(result) -> list[tuple[str, str]]:
    return [(e.step_key, e.event_specific_data.error.message[:400]) for e in result.all_events if e.is_step_failure]


def _latest(instance, key: dg.AssetKey) -> dict:
    return dict(instance.get_latest_materialization_event(key).asset_materialization.metadata)


# --- the harness reproduces issue 24 with the default IO manager ------------------------------------------

@dg.asset
def first_phase() -> dict:
    return {"nodes": 1}


@dg.asset
def second_phase(first_phase: dict) -> dict:
    return {"nodes": first_phase["nodes"] + 1}


def _toy_job():
    # No io_manager resource: Dagster's default, the filesystem under the instance's local artifact storage.
    # Steps in the run's process, as the pipeline runs them (Dagster's default would spawn one per step).
    job = dg.define_asset_job("toy_phases", selection=[first_phase.key, second_phase.key])
    return dg.Definitions(assets=[first_phase, second_phase], jobs=[job],
                          executor=dg.in_process_executor).resolve_job_def("toy_phases")


def test_the_bench_sees_what_breaks_on_kubernetes_with_the_filesystem_io_manager(instance_db):
    """Control: with Dagster's default IO manager the second pod cannot load what the first one wrote
    (DagsterExecutionLoadInputError, as on kind); so the bench tells the two designs apart."""
    recon = dg.reconstructable(_toy_job)
    with pod(instance_db) as first:
        assert dg.execute_job(recon, first, asset_selection=[first_phase.key]).success
    with pod(instance_db) as second:
        result = dg.execute_job(recon, second, asset_selection=[second_phase.key])
    assert not result.success
    [(step, message)] = _failures(result)
    assert step == "second_phase" and 'Error occurred while loading input "first_phase"' in message


# --- the pipeline --------------------------------------------------------------------------------------

def test_each_phase_in_its_own_pod_and_a_reexecution_in_another(stand_in_env, worlds, crdbs, instance_db):
    """Four runs, four pods: phase 0; phase 1 failing at verify_replication; its re-execution from failure;
    phase 2. About a minute: every run waits for its checks' windows on the real Prometheus."""
    crdb = crdbs["live"]
    recon = dg.reconstructable(_evolve)
    with pod(instance_db) as a:
        assert dg.execute_job(recon, a, asset_selection=[KEYS[0]]).success

    crdb.fail_with_nodes(2, r"^\s*SHOW RANGES FROM DATABASE", "XX000", "internal error: injected")
    with pod(instance_db) as b:
        failed = dg.execute_job(recon, b, asset_selection=[KEYS[1]])
    # Phase 1's preflight loaded phase 0's state from the instance, not from pod a's disk.
    assert [step for step, _ in _failures(failed)] == ["phase1_two_nodes.verify_replication"], _failures(failed)
    assert read_world(worlds["live"])["desired"] == 2 and crdb.count(BACKUPS) == 1

    with pod(instance_db) as c:
        again = dg.execute_job(recon, c, reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, c))
        assert again.success, _failures(again)
        steps = _executed_steps(c, again.run_id)
        # Only the failed step and what follows ran; the rest was loaded from run b through the instance.
        assert "phase1_two_nodes.verify_replication" in steps
        assert not {f"phase1_two_nodes.{s}" for s in EARLY_STEPS} & steps
        assert "phase1_two_nodes_checks" in steps  # phase 1's checks, all six in one step
        assert ("phase1_two_nodes", "live_nodes_match_phase") in {
            (e.asset_key.to_user_string(), e.check_name) for e in again.get_asset_check_evaluations()}
        phase1 = _latest(c, KEYS[1])

    # The materialization of the re-execution carries the whole phase, steps of run b included, typed.
    assert phase1["run_id"].value == failed.run_id  # the root run: where the backup lives
    assert isinstance(phase1["started_at"], dg.TimestampMetadataValue)
    assert phase1["backup_status"].value == "taken" and phase1["backup_rows"].value > 0
    assert isinstance(phase1["backup_size_bytes"], dg.IntMetadataValue)
    assert {"backup_step_seconds", "scale_step_seconds", "apply_sql_step_seconds",
            "verify_replication_step_seconds"} <= set(phase1)
    assert phase1["scaled"].value is True and phase1["users_created"].value == ["app_ro_01", "app_ro_02"]
    assert "phase1_two_nodes" in phase1["plan"].value
    assert not any(getattr(v, "value", None) == -1 for v in phase1.values())

    with pod(instance_db) as d:
        last = dg.execute_job(recon, d, asset_selection=[KEYS[2]])
        assert last.success, _failures(last)
        phase2 = _latest(d, KEYS[2])
    assert phase2["previous_phase"].value == "phase1_two_nodes"

    final = read_world(worlds["live"])
    assert final["desired"] == final["ready"] == 3
    assert final["calls"]["set_desired_nodes"] == 3  # one scale per phase: phase 1 was not scaled twice
    assert crdb.count(BACKUPS) == 2  # phase 1's backup was not repeated; phase 2 took one


def test_evolve_end_to_end_then_a_check_rerun_elsewhere_judges_the_same_window(
        stand_in_env, worlds, crdbs, instance_db):
    """`evolve` in one pod; later, in another pod, two checks of phase 0 run alone (what the UI's "Execute" on
    selected checks launches: a run with an asset_check_selection): they load phase 0's state from the instance
    and judge phase 0's own window, not the minutes before they ran. About a minute."""
    recon = dg.reconstructable(_evolve)
    with pod(instance_db) as a:
        run = dg.execute_job(recon, a)
        assert run.success, _failures(run)
        first = {(e.asset_key.to_user_string(), e.check_name): e for e in run.get_asset_check_evaluations()}
    assert len(first) == 18 and all(e.passed for e in first.values())
    assert read_world(worlds["live"])["calls"]["set_desired_nodes"] == 3

    names = ("sample_app_kept_serving", "live_nodes_match_phase")
    selection = {dg.AssetCheckKey(KEYS[0], name) for name in names}
    with pod(instance_db) as b:
        alone = recon.get_subset(asset_selection=frozenset(), asset_check_selection=selection)
        again = dg.execute_job(alone, b)
        assert again.success, _failures(again)
        assert _executed_steps(b, again.run_id) == {"phase0_single_node_checks"}  # phase 0's checks step only
        later = {(e.asset_key.to_user_string(), e.check_name): e for e in again.get_asset_check_evaluations()}
    # Only the selected checks were evaluated (can_subset), not the step's other four.
    assert set(later) == {("phase0_single_node", name) for name in names}
    for name in names:
        before, after = first[("phase0_single_node", name)], later[("phase0_single_node", name)]
        assert after.passed
        for key in ("window_start", "window_end", "judged_at", "query"):
            assert after.metadata[key] == before.metadata[key], (name, key)
