"""Materialize the real phase assets and checks against the stand-in world and a real Prometheus."""

from __future__ import annotations

import dagster as dg
import pytest

from evolution_pipeline.assets import all_assets
from evolution_pipeline.checks import all_checks
from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.phases import PHASES
from evolution_pipeline.state import PhaseState
from tests.doubles.pipeline_world import read_world, world

pytestmark = pytest.mark.slow

LIVE_KEYS = [dg.AssetKey(p.name) for p in PHASES]


def materialize(resources, instance, *keys, raise_on_error=True):
    return dg.materialize(all_assets() + all_checks(), resources=resources, instance=instance,
                          selection=list(keys), raise_on_error=raise_on_error)


def checks_by_name(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_each_phase_materializes_in_order(resources, worlds):
    with dg.instance_for_test() as instance:
        for phase in PHASES:
            result = materialize(resources, instance, dg.AssetKey(phase.name))
            assert result.success
            state: PhaseState = result.output_for_node(phase.name)
            assert (state.phase, state.nodes, state.data, state.system) == (
                phase.name, phase.nodes, phase.data, phase.system)
            assert state.converge_seconds is not None and state.finished_at >= state.started_at
            assert set(state.timings) == {"backup", "scale", "apply_sql", "verify_replication"}
            s = read_world(worlds["live"])
            assert s["desired"] == s["ready"] == phase.nodes
            assert s["zones"]["RANGE default"]["num_replicas"] == phase.data.num_replicas
            assert s["zones"]["RANGE liveness"]["num_replicas"] == phase.system.num_replicas
            assert len(state.zone_statements) == 5 and "<node 1" not in " ".join(state.zone_statements)
            checks = checks_by_name(result)
            assert len(checks) == 5 and all(c.passed for c in checks.values()), checks
            live = checks[(phase.name, "live_nodes_match_phase")]
            assert live.metadata["value"].value == phase.nodes
            assert 'cluster="crdb-test-live"' in live.metadata["query"].text
            assert live.metadata["grafana"].url.startswith("http://grafana.test:3000/d/")
            mat = result.get_asset_materialization_events()[0].materialization
            assert mat.metadata["nodes"].value == phase.nodes
        s = read_world(worlds["live"])
        # Phase 0 had nothing to back up; phases 1 and 2 took exactly one backup each.
        assert s["calls"]["backup_into"] == 2
        assert sorted(s["users"]) == ["app_reader", "app_writer"]
        assert s["scripts"] == [f for p in PHASES for f in p.sql_files]


def test_phase0_on_a_fresh_cluster_records_why_backup_skipped(resources, worlds):
    with dg.instance_for_test() as instance:
        result = materialize(resources, instance, LIVE_KEYS[0])
        state = result.output_for_node("phase0_single_node")
        assert state.backup.status == "skipped"
        assert "no nodes yet" in state.backup.reason
        backup_meta = result.output_for_node("phase0_single_node.backup")
        assert backup_meta.backup.status == "skipped"


def test_phase_cannot_run_before_its_predecessor(resources, worlds):
    with dg.instance_for_test() as instance:
        # Nothing is stored for phase0 yet, so phase1's first step cannot load its input and nothing runs.
        result = materialize(resources, instance, LIVE_KEYS[1], raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["phase1_two_nodes.preflight"]
    assert "loading input" in failures[0].step_failure_data.error.message
    s = read_world(worlds["live"])
    assert s["desired"] == 0 and s["calls"] == {}


def test_evolve_job_runs_all_phases(resources, worlds):
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        assert result.dagster_run.tags["crdb-evolution/environment"] == "live"
        final: PhaseState = result.output_for_node("phase2_three_nodes")
        assert final.nodes == 3 and final.previous_phase == "phase1_two_nodes"
        assert len(result.get_asset_check_evaluations()) == 15
        assert all(e.passed for e in result.get_asset_check_evaluations())
    s = read_world(worlds["live"])
    assert s["calls"]["set_desired_nodes"] == 3  # 0->1, 1->2, 2->3: one scale per phase


def test_materializing_a_phase_twice_is_idempotent(resources, worlds):
    with dg.instance_for_test() as instance:
        materialize(resources, instance, LIVE_KEYS[0])
        materialize(resources, instance, LIVE_KEYS[1])
        before = read_world(worlds["live"])
        second = materialize(resources, instance, LIVE_KEYS[1])
        after = read_world(worlds["live"])
        assert second.success
        assert after["calls"]["set_desired_nodes"] == before["calls"]["set_desired_nodes"]  # no second scale
        assert after["calls"].get("create_user", 0) == before["calls"].get("create_user", 0) == 2
        # One backup per run: the second run took its own, with its own run id in the collection.
        assert after["calls"]["backup_into"] == before["calls"]["backup_into"] + 1
        assert not second.output_for_node("phase1_two_nodes").scaled


def test_rerunning_backup_in_the_same_run_reuses_it(resources, worlds):
    from evolution_pipeline.environments import LIVE
    from evolution_pipeline.ops.backup import build_backup

    with world(worlds["live"]) as s:
        s["desired"] = s["ready"] = 1
        s["database"] = True
    backup = build_backup(LIVE)
    phase = PHASES[1]
    state = PhaseState(phase.name, phase.nodes, phase.data, phase.system, run_id="run-abc")
    ctx = dg.build_op_context(resources=resources)
    first = backup(ctx, state)
    again = backup(dg.build_op_context(resources=resources), state)
    assert first.backup.status == "taken" and again.backup.status == "reused"
    assert first.backup.uri == again.backup.uri == "nodelocal://1/test-backups-live/phase1/run-abc"
    assert first.backup.rows == again.backup.rows is not None and first.backup.size_bytes is not None
    assert read_world(worlds["live"])["calls"]["backup_into"] == 1


def test_a_failed_blocking_check_stops_the_next_phase(resources, worlds, bench):
    resources = {**resources, "prometheus": resources["prometheus"].model_copy(update={"check_settle_seconds": 4})}
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.instance_for_test() as instance:
        job.execute_in_process(instance=instance, asset_selection=[LIVE_KEYS[0]])
        # From now on every node reports an under-replicated range (the preflight does not look at it).
        bench.metrics["live"].overrides = {"ranges_underreplicated": 1}
        result = job.execute_in_process(instance=instance, asset_selection=LIVE_KEYS[1:], raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        ("phase1_two_nodes", "no_underreplicated_ranges")]
    assert "expected == 0" in failed[0].description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"phase1_two_nodes"}
    assert read_world(worlds["live"])["desired"] == 2  # phase 2 never scaled


def test_prometheus_down_fails_the_checks(resources, worlds):
    from evolution_pipeline.resources.prometheus import PrometheusResource

    dead = dict(resources)
    dead["prometheus"] = PrometheusResource(url="http://127.0.0.1:9", cluster_label="crdb-test-live",
                                            check_settle_seconds=1, check_poll_seconds=0.2)
    with dg.instance_for_test() as instance:
        result = materialize(dead, instance, LIVE_KEYS[0], raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 5 and not any(e.passed for e in evaluations)
    assert all("unreachable" in e.description for e in evaluations)


def test_error_budget_breach_fails_the_app_check(resources, worlds, bench):
    app = bench.apps["live"]
    errors_before = bench.scraped_app_errors("live")
    app.refuse_search_reads()  # searches (4 requests in 5) now answer 500; logins still succeed
    assert app.readyz()[0] == 200  # the app looks ready: only its request metrics show the failures
    bench.wait_scraped_app_errors("live", above=errors_before)
    with dg.instance_for_test() as instance:
        result = materialize(resources, instance, LIVE_KEYS[0], raise_on_error=False)
    checks = checks_by_name(result)
    assert not checks[("phase0_single_node", "sample_app_error_budget")].passed
    assert checks[("phase0_single_node", "sample_app_kept_serving")].passed


def test_no_traffic_fails_the_app_check(resources, worlds, bench):
    resources = dict(resources)
    from evolution_pipeline.resources.prometheus import PrometheusResource

    # Scope the app checks to a route the app never serves: no requests, so the check must fail.
    resources["prometheus"] = PrometheusResource(**{**resources["prometheus"].model_dump(),
                                                    "app_routes": "/never-called"})
    with dg.instance_for_test() as instance:
        result = materialize(resources, instance, LIVE_KEYS[0], raise_on_error=False)
    checks = checks_by_name(result)
    assert not checks[("phase0_single_node", "sample_app_kept_serving")].passed


def test_app_reading_through_the_writer_is_fine_until_phase1_created_the_reader(resources, worlds, bench):
    app = bench.apps["live"]
    app.refuse_reader_login()  # as before phase 1 creates app_reader, or with a wrong password
    app.wait_readyz(lambda code, body: code == 200 and body["reader_path"] == "writer",
                    "ready with reads through the writer")
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "phase0_single_node", "phase1_two_nodes"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "phase2_three_nodes.preflight"
    message = failure.step_failure_data.error.message
    assert "phase1_two_nodes created app_reader" in message and "APP_DB_READER_URL" in message
    assert read_world(worlds["live"])["desired"] == 2


def test_phase0_judges_the_app_from_when_it_could_serve(resources, worlds, bench):
    """On a fresh cluster the app fails every request until phase 0 creates its database: those errors
    must not count against the phase. The app checks start their window when the app became ready."""
    import threading

    app = bench.apps["live"]
    errors_before = bench.scraped_app_errors("live")
    app.pg.stop()  # no database yet: not ready, and every request of the background load fails (503)
    app.wait_readyz(lambda code, body: code == 503, "unready")
    bench.wait_scraped_app_errors("live", above=errors_before)  # failing requests scraped before the phase
    done = threading.Event()

    def database_appears():
        while not done.wait(0.05):
            if read_world(worlds["live"])["database"]:
                app.pg.start()
                return

    appears = threading.Thread(target=database_appears, daemon=True)
    appears.start()
    try:
        with dg.instance_for_test() as instance:
            result = materialize(resources, instance, LIVE_KEYS[0], raise_on_error=False)
    finally:
        done.set()
        appears.join(timeout=60)
    checks = checks_by_name(result)
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    state = result.output_for_node("phase0_single_node")
    assert state.app_serving_since > state.started_at
    budget = checks[("phase0_single_node", "sample_app_error_budget")]
    assert budget.metadata["value"].value == 0.0
