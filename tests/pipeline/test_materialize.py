"""Materialize the real phase assets and checks against the stand-in CockroachDB, its world and a real
Prometheus. The real CrdbSqlResource sends every statement; assertions read the stand-in's statement log."""

from __future__ import annotations

import dataclasses
import re

import dagster as dg
import pytest

from evolution_pipeline.assets import all_assets
from evolution_pipeline.checks import all_checks
from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.phases import PHASES, Replication
from evolution_pipeline.resources.sql import ZONE_TARGETS_DATA, ZONE_TARGETS_SYSTEM, parse_zone_config
from evolution_pipeline.sqlscript import load_script
from evolution_pipeline.state import PhaseState
from tests.doubles.pipeline_world import read_world, world
from tests.pipeline.stand_ins import replaced

pytestmark = pytest.mark.slow

LIVE_KEYS = [dg.AssetKey(p.name) for p in PHASES]


def materialize(resources, instance, *keys, raise_on_error=True):
    return dg.materialize(all_assets() + all_checks(), resources=resources, instance=instance,
                          selection=list(keys), raise_on_error=raise_on_error)


def replace_phase(monkeypatch, phase) -> None:
    """Build the assets and checks from a phase table where `phase` replaces its row: each op closes over
    the Phase it is built with (ops/common.py), so the table must be changed where they are built."""
    from evolution_pipeline import assets, checks

    table = tuple(phase if p.name == phase.name else p for p in PHASES)
    for module in (assets, checks):
        monkeypatch.setattr(module, "PHASES", table)


def checks_by_name(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


BACKUPS = r"^\s*BACKUP INTO"
CREATE_USER = r"^\s*CREATE USER"
CREATE_ROLE = r"^\s*CREATE ROLE"


def assert_replicas_match(crdb, phase) -> None:
    """Every range holds the phase's voters and non-voters; pinned phases keep the voters on node 1."""
    targets = {(phase.expected_data_voters, phase.expected_data_non_voters),
               (phase.expected_system_voters, phase.expected_system_non_voters)}
    for r in crdb.range_state():
        assert (len(r["voters"]), len(r["non_voters"])) in targets, r
        if phase.pins_voters:
            assert r["voters"] == [1] and r["leaseholder"] == 1, r


def test_each_phase_materializes_in_order(resources, worlds, crdbs):
    """Three phases one after another, each judged over its 3 s check windows: ~20-25 s."""
    crdb = crdbs["live"]
    with dg.DagsterInstance.ephemeral() as instance:
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
            for target in ZONE_TARGETS_DATA + ZONE_TARGETS_SYSTEM:
                zone = parse_zone_config(crdb.zone(target))
                want = phase.data if target in ZONE_TARGETS_DATA else phase.system
                assert (zone.num_replicas, zone.num_voters or zone.num_replicas) == (
                    want.num_replicas, want.num_voters), (target, crdb.zone(target))
            # What the run recorded is exactly what CockroachDB received, node 1's locality resolved.
            assert len(state.zone_statements) == 5 and "<node 1" not in " ".join(state.zone_statements)
            for statement in state.zone_statements:
                assert crdb.count("^" + re.escape(statement.rstrip(";")) + "$") >= 1, statement
            assert_replicas_match(crdb, phase)
            checks = checks_by_name(result)
            assert len(checks) == 6 and all(c.passed for c in checks.values()), checks
            live = checks[(phase.name, "live_nodes_match_phase")]
            assert live.metadata["value"].value == phase.nodes
            assert 'cluster="crdb-test-live"' in live.metadata["query"].text
            assert live.metadata["grafana"].url.startswith("http://grafana.test:3000/d/")
            mat = result.get_asset_materialization_events()[0].materialization
            assert mat.metadata["nodes"].value == phase.nodes
        # Phase 0 had nothing to back up; phases 1 and 2 took exactly one backup each, each checked.
        assert crdb.count(BACKUPS) == 2
        assert crdb.count(r"^\s*SHOW BACKUP FROM LATEST IN .* WITH check_files") == 2
        # The role model: three groups and two rotation users per path, each created once.
        assert crdb.count(CREATE_USER) == 4 and crdb.count(CREATE_ROLE) == 3
        assert {"app_fa", "app_rw", "app_ro", "app_rw_01", "app_rw_02", "app_ro_01", "app_ro_02"} <= crdb.users
        # Every phase file ran once, in phase order.
        firsts = [load_script(path)[0] for p in PHASES for path in p.sql_paths()]
        sent = [sql for _, _, sql in crdb.statements]
        assert [sent.count(f) for f in firsts] == [1] * len(firsts)
        assert [sent.index(f) for f in firsts] == sorted(sent.index(f) for f in firsts)


def test_phase0_on_a_fresh_cluster_records_why_backup_skipped(resources, worlds):
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, LIVE_KEYS[0])
        state = result.output_for_node("phase0_single_node")
        assert state.backup.status == "skipped"
        assert "no nodes yet" in state.backup.reason
        backup_meta = result.output_for_node("phase0_single_node.backup")
        assert backup_meta.backup.status == "skipped"


def test_phase_cannot_run_before_its_predecessor(resources, worlds, crdbs):
    with dg.DagsterInstance.ephemeral() as instance:
        # Nothing is stored for phase0 yet, so phase1's first step cannot load its input and nothing runs.
        result = materialize(resources, instance, LIVE_KEYS[1], raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["phase1_two_nodes.preflight"]
    assert "loading input" in failures[0].step_failure_data.error.message
    s = read_world(worlds["live"])
    assert s["desired"] == 0 and s["calls"] == {} and crdbs["live"].statements == []


def test_evolve_job_runs_all_phases(resources, worlds):
    """The evolve job, three phases each judged over its 3 s check windows: ~20-25 s."""
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        assert result.dagster_run.tags["crdb-evolution/environment"] == "live"
        final: PhaseState = result.output_for_node("phase2_three_nodes")
        assert final.nodes == 3 and final.previous_phase == "phase1_two_nodes"
        assert len(result.get_asset_check_evaluations()) == 18
        assert all(e.passed for e in result.get_asset_check_evaluations())
    s = read_world(worlds["live"])
    assert s["calls"]["set_desired_nodes"] == 3  # 0->1, 1->2, 2->3: one scale per phase


def test_materializing_a_phase_twice_is_idempotent(resources, worlds, crdbs):
    """Phases materialized twice, each judged over its 3 s check windows: ~20-25 s."""
    crdb = crdbs["live"]
    with dg.DagsterInstance.ephemeral() as instance:
        materialize(resources, instance, LIVE_KEYS[0])
        materialize(resources, instance, LIVE_KEYS[1])
        before = read_world(worlds["live"])
        backups_before = crdb.count(BACKUPS)
        second = materialize(resources, instance, LIVE_KEYS[1])
        after = read_world(worlds["live"])
        assert second.success
        assert after["calls"]["set_desired_nodes"] == before["calls"]["set_desired_nodes"]  # no second scale
        # Phases 0 and 1: two rotation users each, created once whatever the re-runs, and no password set
        # again on a re-run (rotate_credentials owns the passwords once a user exists).
        assert crdb.count(CREATE_USER) == 4 and crdb.count(r"^\s*ALTER USER") == 0
        # One backup per run: the second run took its own, with its own run id in the collection.
        assert crdb.count(BACKUPS) == backups_before + 1
        assert_replicas_match(crdb, PHASES[1])
        assert not second.output_for_node("phase1_two_nodes").scaled


def test_rerunning_backup_in_the_same_run_reuses_it(resources, worlds, crdbs):
    from evolution_pipeline.environments import LIVE
    from evolution_pipeline.ops.backup import build_backup

    with world(worlds["live"]) as s:
        s["desired"] = s["ready"] = 1
    resources["crdb"].ensure_database()
    resources["crdb"].run_script(PHASES[0].sql_paths()[0])  # tables and seed rows to back up
    phase = PHASES[1]
    backup = build_backup(LIVE, phase)
    state = PhaseState(phase.name, phase.nodes, phase.data, phase.system, run_id="run-abc")
    ctx = dg.build_op_context(resources=resources)
    first = backup(ctx, state)
    again = backup(dg.build_op_context(resources=resources), state)
    assert first.backup.status == "taken" and again.backup.status == "reused"
    assert first.backup.uri == again.backup.uri == "nodelocal://1/test-backups-live/phase1/run-abc"
    assert first.backup.rows == again.backup.rows is not None and first.backup.size_bytes is not None
    assert crdbs["live"].count(BACKUPS) == 1
    assert first.backup.rows == 12000  # the seed rows, as SHOW BACKUP ... WITH check_files counts them


def test_a_failed_blocking_check_stops_the_next_phase(resources, worlds, bench):
    """Two phases over their 3 s check windows with a failing check in between: ~15-25 s."""
    resources = {**resources, "prometheus": replaced(resources["prometheus"], check_settle_seconds=4)}
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.DagsterInstance.ephemeral() as instance:
        job.execute_in_process(instance=instance, asset_selection=[LIVE_KEYS[0]])
        # From now on every node reports an under-replicated range (the preflight does not look at it).
        bench.metrics["live"].overrides = {"ranges_underreplicated": 1}
        # Scraped before phase 1 starts: its check reads the gauge at the phase's end, which on busy cores can
        # come before the next 1 s scrape (the check then saw the last 0 and passed).
        bench.prometheus.wait_for('sum(ranges_underreplicated{job="cockroachdb",cluster="crdb-test-live"}) > 0')
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
    """Phase 0's checks wait for their 3 s window, then each polls an unreachable Prometheus for its 1 s settle: ~10-15 s."""
    dead = dict(resources)
    # The bench's windows (min_window_seconds 3), only the address changed: a check waits for its window
    # to end before it asks, and the 60 s default would only make this test wait.
    dead["prometheus"] = replaced(resources["prometheus"], url="http://127.0.0.1:9", check_settle_seconds=1,
                                  check_poll_seconds=0.2)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(dead, instance, LIVE_KEYS[0], raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 6 and not any(e.passed for e in evaluations)
    assert all("unreachable" in e.description for e in evaluations)


def test_error_budget_breach_fails_the_app_check(resources, worlds, bench):
    app = bench.apps["live"]
    errors_before = bench.scraped_app_errors("live")
    app.refuse_search_reads()  # searches (4 requests in 5) now answer 500; logins still succeed
    assert app.readyz()[0] == 200  # the app looks ready: only its request metrics show the failures
    bench.wait_scraped_app_errors("live", above=errors_before)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, LIVE_KEYS[0], raise_on_error=False)
    checks = checks_by_name(result)
    assert not checks[("phase0_single_node", "sample_app_error_budget")].passed
    assert checks[("phase0_single_node", "sample_app_kept_serving")].passed


def test_no_traffic_fails_the_app_check(resources, worlds, bench):
    """Phase 0 over its 3 s windows, then the app checks wait 2 s for traffic that never comes: ~10-15 s."""
    resources = dict(resources)
    # Scope the app checks to a route the app never serves: no requests, so the check must fail.
    # Missing data is waited for until check_settle_seconds run out: 2 s shows the refusal as well as 15 s.
    resources["prometheus"] = replaced(resources["prometheus"], app_routes="/never-called", check_settle_seconds=2)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(resources, instance, LIVE_KEYS[0], raise_on_error=False)
    checks = checks_by_name(result)
    assert not checks[("phase0_single_node", "sample_app_kept_serving")].passed


def test_app_reading_through_the_writer_is_fine_until_phase1_created_the_reader(resources, worlds, bench):
    """The evolve job up to phase 2's preflight, each phase judged over its 3 s windows: ~20-25 s."""
    app = bench.apps["live"]
    app.refuse_reader_login()  # as before phase 1 creates app_ro_01, or with a wrong password
    app.wait_readyz(lambda code, body: code == 200 and body["reader_path"] == "writer",
                    "ready with reads through the writer")
    job = build_definitions(resources).resolve_job_def("evolve")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "phase0_single_node", "phase1_two_nodes"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "phase2_three_nodes.preflight"
    message = failure.step_failure_data.error.message
    assert "phase1_two_nodes created app_ro_01/app_ro_02" in message and "APP_READER_PASSWORD" in message
    assert read_world(worlds["live"])["desired"] == 2


def test_phase0_judges_the_app_from_when_it_could_serve(resources, worlds, crdbs, bench):
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
            if "app" in crdbs["live"].databases:
                app.pg.start()
                return

    appears = threading.Thread(target=database_appears, daemon=True)
    appears.start()
    try:
        with dg.DagsterInstance.ephemeral() as instance:
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


@pytest.mark.parametrize(("states_voters", "refusal"), [
    (False, "at least 3 replicas are required for multi-replica configurations"),  # the seed's phase 1
    (True, "at least 3 voting replicas are required for multi-replica configurations"),
])
def test_two_voters_are_refused_by_cockroachdb(resources, worlds, crdbs, monkeypatch, states_voters, refusal):
    """Put the seed's "RF 2" back: CockroachDB's zone validation refuses it (SQLSTATE 23514), apply_sql fails."""
    from evolution_pipeline import zones

    two = Replication(num_replicas=2, num_voters=2)
    replace_phase(monkeypatch, dataclasses.replace(PHASES[1], data=two, system=two))
    monkeypatch.setattr(zones, "_states_voters", lambda phase: states_voters)
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(resources, instance, LIVE_KEYS[0]).success
        result = materialize(resources, instance, LIVE_KEYS[1], raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "phase1_two_nodes.apply_sql"
    message = failure.step_failure_data.error.message
    assert "refused the phase's zone config" in message and refusal in message, message
    assert crdbs["live"].count(r"CONFIGURE ZONE USING num_replicas = 2") == 1  # refused at the first zone


def test_three_voters_on_two_nodes_never_converge(resources, worlds, crdbs, monkeypatch):
    """A zone CockroachDB accepts but two nodes cannot satisfy: verify_replication must time out, naming
    the ranges, instead of passing (the replicate queue refuses to go to a fragile 2-voter quorum)."""
    three = Replication(num_replicas=3, num_voters=3)
    replace_phase(monkeypatch, dataclasses.replace(PHASES[1], data=three))
    resources = {**resources, "crdb": replaced(resources["crdb"], replication_timeout_seconds=2)}
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(resources, instance, LIVE_KEYS[0]).success
        result = materialize(resources, instance, LIVE_KEYS[1], raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "phase1_two_nodes.verify_replication"
    message = failure.step_failure_data.error.message
    assert "still not at the phase's voters and non-voters" in message and "want 3 voter(s)" in message, message
    assert all(len(r["voters"]) == 1 for r in crdbs["live"].range_state() if r["database"] == "app")


def _backup_once(resources, worlds, run_id: str):
    """Run the backup op alone on a one-node cluster that has the app's data."""
    from evolution_pipeline.environments import LIVE
    from evolution_pipeline.ops.backup import build_backup

    with world(worlds["live"]) as s:
        s["desired"] = s["ready"] = 1
    resources["crdb"].ensure_database()
    phase = PHASES[1]
    state = PhaseState(phase.name, phase.nodes, phase.data, phase.system, run_id=run_id)
    return build_backup(LIVE, phase)(dg.build_op_context(resources=resources), state)


def test_a_missing_bucket_is_never_taken_for_no_backup(resources, worlds, crdbs):
    """backups_in: 0 rows means none; an error (here S3's, which says "does not exist") stops the phase."""
    crdbs["live"].fail_next(r"^\s*SHOW BACKUPS IN", "XXUUU",
                            "NoSuchBucket: The specified bucket does not exist")
    with pytest.raises(dg.Failure, match="cannot list the backups in .*NoSuchBucket"):
        _backup_once(resources, worlds, "run-bucket")
    assert crdbs["live"].count(BACKUPS) == 0


def test_a_backup_that_fails_its_file_check_stops_the_phase(resources, worlds, crdbs):
    crdbs["live"].fail_next(r"^\s*SHOW BACKUP FROM LATEST", "58P01",
                            "file does not exist: /crdb-evolution-backups/2026/11/30-031500.00/data/1.sst")
    with pytest.raises(dg.Failure, match="did not pass SHOW BACKUP ... WITH check_files.*file does not exist"):
        _backup_once(resources, worlds, "run-check")
    assert crdbs["live"].count(BACKUPS) == 1


@pytest.mark.parametrize("resource_knows", [True, False])
def test_an_insecure_cluster_never_gets_a_password(resources, worlds, bench, monkeypatch, resource_knows):
    """CockroachDB refuses passwords in insecure mode (28P01). The resource flagged insecure creates the
    users without one and needs no password variables; one that is not flagged fails with the reason."""
    from tests.pipeline.crdb_stand_in import PipelineCrdb

    insecure = PipelineCrdb(worlds["live"], insecure=True).start()
    bench.metrics["live"].crdb = insecure
    try:
        if resource_knows:
            monkeypatch.delenv("APP_WRITER_PASSWORD")
        crdb = replaced(resources["crdb"], url=insecure.url, insecure=resource_knows)
        with dg.DagsterInstance.ephemeral() as instance:
            result = materialize({**resources, "crdb": crdb}, instance, LIVE_KEYS[0], raise_on_error=False)
    finally:
        insecure.stop()
    if resource_knows:
        assert result.success and "app_rw_01" in insecure.users
        assert insecure.count(r"PASSWORD") == 0
    else:
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert failure.step_key == "phase0_single_node.apply_sql"
        assert "setting or updating a password is not supported in insecure mode" in (
            failure.step_failure_data.error.message)


def preflight_plan(result, phase) -> str:
    """The markdown plan the preflight step recorded before anything changed, as the phase's materialization
    (its history in the UI) carries it."""
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(phase.name):
            return event.materialization.metadata["plan"].value
    raise AssertionError(f"no materialization of {phase.name}")


def test_preflight_records_what_the_phase_will_change_before_it_changes_it(resources, worlds, crdbs):
    """Phases over their 3 s check windows, the plan read before and after: ~20-25 s."""
    with dg.DagsterInstance.ephemeral() as instance:
        materialize(resources, instance, LIVE_KEYS[0])
        result = materialize(resources, instance, LIVE_KEYS[1])
        plan = preflight_plan(result, PHASES[1])
        # Read while the cluster still had one node and phase 0's zones: the scale and zones are to come,
        # with node 1's real locality (not the placeholder) and the exact patch or processes.
        assert "| nodes | scale from 1 to 2 node(s) | will change |" in plan
        assert "| zone | zone config of RANGE default | will change |" in plan
        assert "voter_constraints = '[+region=" in plan and "<node 1" not in plan
        again = preflight_plan(materialize(resources, instance, LIVE_KEYS[1]), PHASES[1])
        assert "| nodes | 2 node(s) | already done |" in again
        assert "| zone | zone config of RANGE default | already done |" in again
