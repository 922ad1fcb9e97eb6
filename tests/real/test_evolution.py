"""The whole `evolve` job on a REAL CockroachDB: the product's local backend starts official `cockroach`
processes, the real sample app serves under its background load, a real Prometheus scrapes both, and the
job runs with the resources evolution_pipeline/configuration.py builds from the environment.

Asserted: every phase's steps and blocking checks pass; the voters and non-voters of every range (and the
zone configs behind them) match the phase table in evolution_pipeline/phases.py; once the read-only user
exists the app reads through it with follower reads; the app's 5xx ratio from
the moment it could serve stays within the checks' error budget; the last backup passes SHOW BACKUP ...
WITH check_files, and the product's restore drill restores it into a scratch database whose row counts and
id checksums equal the source's as of the backup's end time, then drops the scratch database.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import dagster as dg
import pytest

from evolution_pipeline.checks import CHECKS
from evolution_pipeline.environments import ENVIRONMENT_TAG, LIVE, REHEARSAL
from evolution_pipeline.ops import PhaseOps
from evolution_pipeline.phases import APP_DATABASE, PHASES, Phase
from evolution_pipeline.state import PhaseState

from . import observe
from .bench import BACKGROUND_RPS, CLUSTER_LABEL, RealBench, make_workdir, remove_workdir, start_bench
from .conftest import REPORT
from .watch import Watcher

# One fixture runs the whole evolution (minutes) for every test of this module; bounded all the same.
pytestmark = [pytest.mark.real, pytest.mark.timeout(3600)]

STEPS = tuple(f.name for f in dataclasses.fields(PhaseOps))  # preflight, backup, scale, apply_sql, verify_replication
APP_ROUTES = "/login|/search"  # what the blocking app checks judge (PrometheusResource.app_routes)


@dataclass
class Evolution:
    bench: RealBench
    result: dg.ExecuteInProcessResult
    watcher: Watcher
    seconds: float

    def state(self, phase: Phase) -> PhaseState:
        materialized = {e.asset_key.to_user_string() for e in self.result.get_asset_materialization_events()}
        assert phase.name in materialized, f"the evolve run stopped before {phase.name} (see the steps test)"
        return self.result.output_for_node(phase.name)

    def snapshot(self, phase: Phase) -> observe.Snapshot:
        snap = self.watcher.snapshots.get(phase.name)
        if snap is None:
            self.state(phase)  # says so when the run never got there
        assert snap is not None, f"no placement was read for {phase.name}:\n{self.context()}"
        return snap

    def context(self) -> str:
        """What to read when an assertion fails: the watcher's errors and the logs."""
        return "\n".join(self.watcher.errors) + "\n" + self.bench.diagnostics()


@pytest.fixture(scope="module")
def evolution(cockroach_bin):
    from evolution_pipeline.configuration import resources_from_env
    from evolution_pipeline.definitions import build_definitions

    workdir, keep = make_workdir()
    passed = False
    with pytest.MonkeyPatch.context() as monkeypatch:
        bench = start_bench(workdir, cockroach_bin, monkeypatch)
        try:
            with dg.instance_for_test(temp_dir=str(workdir / "dagster_home")) as instance:
                watcher = Watcher(instance, bench.admin_url, bench.app.base_url)
                watcher.start()
                started = time.monotonic()
                job = build_definitions(resources_from_env()).resolve_job_def("evolve")
                result = job.execute_in_process(instance=instance, raise_on_error=False)
                seconds = time.monotonic() - started
                watcher.stop()
                REPORT.append(f"evolve on a real cluster: {'succeeded' if result.success else 'FAILED'} "
                              f"in {seconds:.0f}s")
                REPORT.extend(_timings(result))
                yield Evolution(bench, result, watcher, seconds)
                passed = result.success
        finally:
            bench.close()
    if passed and not keep:
        remove_workdir(workdir)
    else:
        REPORT.append(f"the run's folder (stores; logs of the nodes, the app and Prometheus) is kept: {workdir}")


def _timings(result: dg.ExecuteInProcessResult) -> list[str]:
    """Seconds per step and time to converge, per phase that materialized: the figures a reader of a real run
    wants."""
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    lines = []
    for phase in PHASES:
        if phase.name in done:
            state = result.output_for_node(phase.name)
            lines.append(f"  {phase.name}: converged in {state.converge_seconds}s; steps {state.timings}")
    return lines


def test_every_phase_step_and_blocking_check_passes(evolution):
    result = evolution.result
    failures = [f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
                for e in result.all_events if e.is_step_failure]
    assert not failures, "\n".join(failures) + "\n" + evolution.context()
    succeeded = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    missing = [f"{p.name}.{step}" for p in PHASES for step in STEPS if f"{p.name}.{step}" not in succeeded]
    assert not missing, f"steps that never succeeded: {missing}"
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    expected = {(p.name, c.name) for p in PHASES for c in CHECKS}
    assert expected <= set(evaluations), f"checks that did not run: {sorted(expected - set(evaluations))}"
    failed = [e.description for e in evaluations.values() if not e.passed]
    assert not failed, "\n".join(failed)
    assert result.success
    assert result.dagster_run.tags[ENVIRONMENT_TAG] == LIVE.name


@pytest.mark.parametrize("phase", PHASES, ids=[p.name for p in PHASES])
def test_voters_and_non_voters_per_range_match_the_phase_table(evolution, phase):
    snap = evolution.snapshot(phase)
    data = (phase.expected_data_voters, phase.expected_data_non_voters)
    system = (phase.expected_system_voters, phase.expected_system_non_voters)
    app, cluster = snap.shapes("app"), snap.shapes("cluster")
    # Every range of the app's database follows RANGE default; every other range one of the two zones.
    assert app and set(app) == {data}, f"{phase.name}: app ranges (voters, non-voters) -> count {dict(app)}, want {data}"
    assert set(cluster) <= {data, system}, (
        f"{phase.name}: cluster ranges (voters, non-voters) -> count {dict(cluster)}, want only {data} or {system}")
    nodes = {n for r in snap.ranges for n in r.voters + r.non_voters}
    assert nodes <= set(range(1, phase.nodes + 1)), f"{phase.name}: replicas on nodes {sorted(nodes)}"
    if phase.pins_voters:
        _assert_pinned_to_node1(snap, phase)


def _assert_pinned_to_node1(snap: observe.Snapshot, phase: Phase) -> None:
    """Voters (hence leases: a non-voter cannot hold one) on node 1, pinned by node 1's locality."""
    if phase.data.pin_voters_to_first_node:
        off = [r for r in snap.ranges if r.scope == "app" and r.voters != (1,)]
        assert not off, f"{phase.name}: app ranges whose voter is not node 1: {off[:10]}"
        leases = {r.lease_holder for r in snap.ranges if r.scope == "app"}
        assert leases == {1}, f"{phase.name}: app leaseholders on nodes {leases}"
    if phase.data.pin_voters_to_first_node and phase.system.pin_voters_to_first_node:
        off = [r for r in snap.ranges if r.scope == "cluster" and r.voters != (1,)]
        assert not off, f"{phase.name}: ranges whose voter is not node 1: {off[:10]}"
    tier = snap.node1_locality.split(",")[-1]
    assert tier, f"{phase.name}: node 1 reports no locality"
    for kind, replication in (("data", phase.data), ("system", phase.system)):
        for target in observe.ZONES[kind] if replication.pin_voters_to_first_node else ():
            constraints = observe.zone_field(snap.zones[target], "voter_constraints") or ""
            assert tier in constraints, f"{phase.name}: {target} voter_constraints {constraints!r} do not name {tier}"


@pytest.mark.parametrize("phase", PHASES, ids=[p.name for p in PHASES])
def test_zone_configs_are_the_phase_tables(evolution, phase):
    snap = evolution.snapshot(phase)
    for kind, replication in (("data", phase.data), ("system", phase.system)):
        for target in observe.ZONES[kind]:
            raw = snap.zones[target]
            replicas = observe.zone_field(raw, "num_replicas")
            # num_voters unset (or 0) means every replica votes (pkg/config/zonepb/zone.go GetNumVoters).
            voters = observe.zone_field(raw, "num_voters")
            voters = replicas if voters in (None, "0") else voters
            assert (replicas, voters) == (str(replication.num_replicas), str(replication.num_voters)), (
                f"{phase.name}: {target} is {raw!r}")
            if not replication.pin_voters_to_first_node:
                leftover = observe.zone_field(raw, "voter_constraints")
                assert leftover in (None, "[]", "{}"), f"{phase.name}: {target} keeps voter_constraints {leftover!r}"


READER_PHASE = next(p for p in PHASES if "app_ro_01" in p.users)  # the phase that creates the read-only user


@pytest.mark.parametrize("phase", PHASES[READER_PHASE.index:], ids=[p.name for p in PHASES[READER_PHASE.index:]])
def test_the_app_reads_through_the_reader_with_follower_reads(evolution, phase):
    """Once the read-only user exists the app's reader path serves searches, at follower_read_timestamp()
    because it talks to CockroachDB: phase 1's non-voter on node 2 is a read replica in use."""
    body = evolution.snapshot(phase).app_readyz
    assert body.get("reader_path") == "reader" and body.get("follower_reads") is True, (
        f"{phase.name}: /readyz {body}")


def test_app_errors_stay_within_the_budget_under_load(evolution):
    """From the moment the app could first serve (its database exists) to the end of the run: the 5xx ratio of
    the routes the checks judge stays within their budget, and the background load really ran."""
    from evolution_pipeline.configuration import prometheus_resource

    ready_at = evolution.watcher.app_ready_at
    assert ready_at, f"the app never answered /readyz 200:\n{evolution.context()}"
    window = max(60, int(time.time() - ready_at))
    base = f'app_requests_total{{job="sample-app",cluster="{CLUSTER_LABEL}",route=~"{APP_ROUTES}"'
    prom = evolution.bench.prometheus
    total = _value(prom.query(f"sum(increase({base}}}[{window}s]))"))
    errors = _value(prom.query(f'sum(increase({base},status=~"5.."}}[{window}s])) or vector(0)'))
    assert total >= 0.5 * BACKGROUND_RPS * window, f"only {total:.0f} requests in {window}s: was the app under load?"
    budget = prometheus_resource(LIVE).app_error_budget
    assert errors / total <= budget, f"{errors:.0f} of {total:.0f} requests answered 5xx (budget {budget:g})"


def _value(result: list[dict]) -> float:
    return float(result[0]["value"][1]) if result else 0.0


def test_the_last_backup_is_verified_and_restores_into_a_scratch_database(evolution):
    """The product's own restore drill (evolution_pipeline/resources/restore.py, run by the nightly rehearsal)
    on the real cluster: RESTORE ... WITH new_db_name into a scratch database, row counts and id checksums
    against the source AS OF the backup's end time, the scratch database dropped afterwards."""
    from evolution_pipeline.resources import restore
    from evolution_pipeline.resources.sql_resource import CrdbSqlResource

    states = {p.name: evolution.state(p) for p in PHASES}
    assert states[PHASES[0].name].backup.status == "skipped", "phase 0 has no application data to back up yet"
    taken = [s.backup for s in states.values() if s.backup and s.backup.status == "taken"]
    assert len(taken) == len(PHASES) - 1, f"one backup per phase after phase 0: {[s.backup for s in states.values()]}"
    # The backup op recorded what SHOW BACKUP ... WITH check_files reported (sizes and rows in the metadata).
    assert taken[-1].size_bytes and taken[-1].rows and taken[-1].file_bytes, f"backup record: {taken[-1]}"
    url, uri = evolution.bench.admin_url, taken[-1].uri
    tables = observe.show_backup(url, uri)
    assert tables, f"SHOW BACKUP FROM LATEST IN {uri} lists no table of {APP_DATABASE!r}"
    assert all(t.file_bytes > 0 for t in tables if t.size_bytes), f"check_files found empty files: {tables}"
    crdb = CrdbSqlResource(url=url, database=APP_DATABASE)
    # The drill's guard allows only the rehearsal environment: this cluster is the suite's own, made for this
    # run and stopped after it, which is exactly what a rehearsal cluster is.
    comparison = restore.restore_and_compare(crdb, REHEARSAL.name, uri)
    assert not comparison.mismatches(), "\n".join(comparison.mismatches())
    assert {t.table for t in comparison.restored_tables} == {t.name for t in tables}
    assert sum(t.rows for t in comparison.restored_tables) > 0, "the backup holds the app's seeded data"
    assert not observe.database_exists(url, comparison.scratch), "the scratch database is dropped"
