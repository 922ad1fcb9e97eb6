"""The pipeline's test bench: a real Prometheus scraping stand-in CockroachDB nodes and the real sample app.

Each environment has a wire-level stand-in CockroachDB (tests/pipeline/crdb_stand_in.py) that the real
CrdbSqlResource talks to, and stand-in nodes whose metrics follow it on every scrape (live nodes = the world's
ready nodes; under-replicated and unavailable ranges = the stand-in's range_health(), counted like
CockroachDB's replica metrics), so the blocking checks see the consequences of what the ops did, through a
real Prometheus and real PromQL.

CockroachDB cannot run here, the sample app can: each environment (live, rehearsal) has the real app
(`python -m sample_app`) on its own real PostgreSQL (tests/app/pg.py), so stopping one environment's
database leaves the other alone. The app serves, fails and recovers for real: a test acts on it only
through its database (stop it, refuse the reader's login, revoke a privilege), as an outage or a wrong
grant would, and `worlds` undoes that before every test. The world file stands in for the cluster's
topology only; the app never sees it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from crdb_common import httpc
from evolution_pipeline.environments import LIVE, REHEARSAL
from tests.app.appproc import AppProcess
from tests.app.conftest import app_env
from tests.app.pg import LocalPostgres
from tests.doubles.crdb_metrics import CrdbMetricsCluster
from tests.doubles.pipeline_world import live_node_ids, new_world, read_world
from tests.pipeline.crdb_stand_in import PipelineCrdb
from tests.pipeline.stand_ins import CLUSTER_LABEL, WINDOW_SECONDS, stand_in_resources
from tests.support import balance
from tests.support.prometheus import start_prometheus

# Stand-in nodes per environment: the largest phase of any evolution plan (the three-zones plan's six); a
# node above the world's count answers no scrape, like a node that was never started.
BENCH_NODES = 6


class WorldMetrics:
    """Stand-in nodes per environment whose metrics follow a world file and its stand-in CockroachDB."""

    def __init__(self):
        self.cluster = CrdbMetricsCluster(BENCH_NODES)
        self.world_path = None
        self.crdb: PipelineCrdb | None = None
        self.overrides: dict[str, float] = {}
        for node in self.cluster.nodes:
            node.before_scrape = self._update

    def _update(self, node) -> None:
        if self.world_path is None:
            node.up = False
            return
        s = read_world(self.world_path)
        live = live_node_ids(s)
        node.up = node.node_id in live
        # Store-level gauges are per store and counted by each range's leaseholder; every lease starts on
        # node 1 here, so store 1 reports the cluster's totals (the checks sum over stores): only its scrape
        # needs the ranges' health.
        first = node.node_id == 1
        health = self.crdb.range_health() if self.crdb and node.up and first else {}
        values = {"liveness_livenodes": len(live),
                  "ranges_underreplicated": health.get("under_replicated", 0) if first else 0,
                  "ranges_unavailable": health.get("unavailable", 0) if first else 0}
        values.update(self.overrides)
        node.set(**values)


# Background load of each app, requests per second: every 1 s scrape sees the request counter grow.
BACKGROUND_RPS = 20


class EnvironmentApp:
    """One environment's sample app: the real app process on its own real PostgreSQL.

    The pipeline uses GET /readyz and POST /control/background/{start,stop}; Prometheus scrapes /metrics.
    """

    def __init__(self, name: str, log_dir: Path):
        self.name = name
        # Not under pytest's tmp dir: pytest keeps that 0700, and the server runs as another user.
        self.root = Path(tempfile.mkdtemp(prefix=f"pipeline-pg-{name}-"))
        self.root.chmod(0o755)
        self.pg = self.proc = None
        try:
            self.pg = LocalPostgres(self.root)
            self.proc = AppProcess(app_env(self.pg, APP_BACKGROUND_RPS=str(BACKGROUND_RPS)),
                                   log_dir / f"app-{name}.log")
        except BaseException:
            self.close()
            raise
        self.url = self.proc.base_url
        self.target = f"127.0.0.1:{self.proc.port}"

    # --- the app's API
    def readyz(self) -> tuple[int, dict]:
        r = httpc.get(self.url + "/readyz", timeout=10)
        return r.status_code, r.json()

    def wait_readyz(self, ok: Callable[[int, dict], bool], what: str, timeout: float = 30.0) -> dict:
        """Poll /readyz until ok(status, body); the app re-probes its database every 2 s."""
        deadline = time.monotonic() + timeout
        while True:
            code, body = self.readyz()
            if ok(code, body):
                return body
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name} app: not {what} within {timeout:g} s; "
                                     f"/readyz {code}: {body}\n{self.proc.log()}")
            time.sleep(0.2)

    def wait_ready_on_reader(self, timeout: float = 30.0) -> dict:
        return self.wait_readyz(lambda code, body: code == 200 and body["reader_path"] == "reader",
                                "ready with reads on the reader path", timeout)

    def controls(self) -> dict:
        r = httpc.get(self.url + "/control", timeout=10)
        r.raise_for_status()
        return r.json()

    def set_background_load(self, running: bool) -> None:
        action = "start" if running else "stop"
        httpc.post(f"{self.url}/control/background/{action}", timeout=10).raise_for_status()

    # --- what a test does to the app, through its database (reset() undoes all of it)
    def refuse_reader_login(self) -> None:
        """app_ro_01's password no longer matches the app's and its sessions are cut: every login of the
        reader is refused, as before phase 1 creates the user or with a wrong APP_DB_READER_URL."""
        self.pg.execute(f"ALTER ROLE app_ro_01 PASSWORD '{secrets.token_hex(12)}'", dbname="postgres")
        self.pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app_ro_01'",
                        dbname="postgres")

    def refuse_search_reads(self) -> None:
        """app_ro keeps SELECT on search_terms.id only: every /search (term, popularity) is refused with
        a privilege error, HTTP 500, while /readyz, which only needs to see a row, stays 200."""
        with psycopg.connect(self.pg.admin_conninfo()) as conn:  # one transaction: no moment without SELECT
            conn.execute("REVOKE SELECT ON TABLE search_terms FROM app_ro")
            conn.execute("GRANT SELECT (id) ON TABLE search_terms TO app_ro")

    def database_running(self) -> bool:
        try:
            self.pg.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def reset(self, background_load: bool) -> None:
        """Healthy again (idempotent): database up, the phase files' privileges and the right passwords,
        the background load as asked, and /readyz 200 with reads on the reader path."""
        if not self.database_running():
            self.pg.start()
        self.pg.restore_access()
        self.set_background_load(background_load)
        self.wait_ready_on_reader()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        if self.pg is not None:
            self.pg.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Bench:
    def __init__(self, workdir: Path):
        self.metrics = {LIVE.name: WorldMetrics(), REHEARSAL.name: WorldMetrics()}
        self.apps: dict[str, EnvironmentApp] = {}
        self.prometheus = None
        try:
            for env in (LIVE, REHEARSAL):
                self.apps[env.name] = EnvironmentApp(env.name, workdir)
            self.prometheus = start_prometheus(workdir / "prometheus", self._prometheus_config())
        except BaseException:
            self.close()
            raise

    def _prometheus_config(self) -> dict:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [],
        }
        for env in (LIVE, REHEARSAL):
            labels = {"cluster": CLUSTER_LABEL[env]}
            config["scrape_configs"] += [
                {"job_name": f"cockroachdb-{env.name}", "metrics_path": "/_status/vars",
                 "static_configs": [{"targets": self.metrics[env.name].cluster.targets, "labels": labels}],
                 # The checks select job="cockroachdb": rename, as relabelling in a real config would.
                 "relabel_configs": [{"target_label": "job", "replacement": "cockroachdb"}]},
                {"job_name": f"sample-app-{env.name}",
                 "static_configs": [{"targets": [self.apps[env.name].target], "labels": labels}],
                 "relabel_configs": [{"target_label": "job", "replacement": "sample-app"}]},
            ]
        return config

    def scraped_app_errors(self, name: str) -> float:
        """The app's 5xx responses so far, as Prometheus last scraped them (0 before the first one)."""
        cluster = next(label for env, label in CLUSTER_LABEL.items() if env.name == name)
        result = self.prometheus.query(
            f'sum(app_requests_total{{job="sample-app",cluster="{cluster}",status=~"5.."}})')
        return float(result[0]["value"][1]) if result else 0.0

    def wait_scraped_app_errors(self, name: str, above: float, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.scraped_app_errors(name) <= above:
            assert time.monotonic() < deadline, f"no new 5xx of the {name} app scraped within {timeout:g} s"
            time.sleep(0.2)

    def wait_for_app_history(self, name: str, seconds: int) -> None:
        """Until Prometheus holds `seconds` scrapes (1 s apart) of the app's /login and /search requests."""
        cluster = next(label for env, label in CLUSTER_LABEL.items() if env.name == name)
        series = f'app_requests_total{{job="sample-app",cluster="{cluster}",route=~"/login|/search"}}'
        self.prometheus.wait_for(f"max by (route) (count_over_time({series}[5m]))", timeout=seconds + 30,
                                 predicate=lambda result: len({s["metric"]["route"] for s in result}) == 2
                                 and min(float(s["value"][1]) for s in result) >= seconds)

    def close(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        for m in self.metrics.values():
            m.cluster.close()
        for a in self.apps.values():
            a.close()


# Seconds of the live app's request history the bench holds before its first test: a phase's latency gate
# compares the phase with a baseline window just before it (at least WINDOW_SECONDS in the stand-in
# resources), and a bench started a moment ago has no such minutes yet. One bench per pytest-xdist worker, so
# every worker's first pipeline test would otherwise meet a fresh app, as only a fresh cluster should.
BASELINE_HISTORY_SECONDS = WINDOW_SECONDS + 3


def _ready_bench(workdir: Path) -> Bench:
    bench = Bench(workdir)
    try:
        bench.apps[LIVE.name].reset(background_load=True)  # as `worlds` leaves it before each test
        bench.wait_for_app_history(LIVE.name, BASELINE_HISTORY_SECONDS)
    except BaseException:
        bench.close()
        raise
    return bench


class _EarlyBench:
    """The worker's bench, started in a thread as soon as collection shows a test that needs it: its ~15 s
    (two PostgreSQL servers, two apps, Prometheus, then the app's request history) is mostly waiting, and
    the worker runs its other tests meanwhile instead of waiting at its first pipeline test."""

    def __init__(self, workdir: Path):
        self.result: Bench | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(workdir,), name="early-bench", daemon=True)
        self.thread.start()

    def _run(self, workdir: Path) -> None:
        try:
            self.result = _ready_bench(workdir)
        except BaseException as exc:  # noqa: BLE001 - handed to the fixture, which raises it in the test
            self.error = exc

    def get(self) -> Bench:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


_early: list[_EarlyBench] = []


def pytest_collection_finish(session):
    if session.config.option.collectonly:  # nothing will run: a --collect-only (tests/real/test_gate.py) starts no bench
        return
    if "bench" in balance.apart_until:
        return  # the first test says whether this worker's quarter needs a bench (_start_or_skip_the_bench)
    if any("bench" in getattr(item, "fixturenames", ()) for item in session.items):
        _early.append(_EarlyBench(session.config._tmp_path_factory.mktemp("bench")))


def _start_or_skip_the_bench(item) -> None:
    """With the bench's files dealt to half the quarters (tests/support/balance.py), a worker learns from its
    first test's place in the order whether its quarter uses the bench: then it starts it now, while its
    quarter's first ~15 s of other tests run; otherwise it never starts one (an idle bench costs ~8 % of a
    core to the session's end) unless a test it steals needs it."""
    until = balance.apart_until.get("bench")
    if until is not None and not _early and not _the_bench and item.session.items.index(item) < until:
        _early.append(_EarlyBench(item.config._tmp_path_factory.mktemp("bench")))


# A runtest hook here would see only tests/pipeline's tests: the suite-wide plugin calls this at the first test.
balance.first_test_hooks.append(_start_or_skip_the_bench)


# The worker's one bench. tests/drills and tests/e2e import the `bench` fixture, which makes each import a
# fixture definition of its own, with its own session-scoped value: without this, a worker that ran tests of
# all three folders held three benches (six apps, three Prometheus) until its end.
_the_bench: list[Bench] = []


def _close_unclaimed_early_benches() -> None:
    for early in _early:  # a bench no test asked for (worksteal gave this worker none): still stopped
        early.thread.join()
        if early.result is not None:
            early.result.close()
    _early.clear()


def pytest_sessionfinish(session):
    # Runs only where this file is a conftest of the session (tests/pipeline collected): the bench fixture's
    # own teardown stops what it started, this stops an early bench no test claimed.
    _close_unclaimed_early_benches()


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    """One bench per worker (session scope is per pytest-xdist worker): its own apps, databases and Prometheus
    on free ports and in the worker's own temporary directory, so workers never share a server. Started early
    (_EarlyBench) when collection shows it will be needed; one per process whichever folder asks
    (_the_bench). The definition that started it stops it at the session's end: a session of tests/drills
    alone has no tests/pipeline conftest, so no pytest_sessionfinish of this file, to do it."""
    if _the_bench:
        yield _the_bench[0]
        return
    _the_bench.append(_early.pop().get() if _early else _ready_bench(tmp_path_factory.mktemp("bench")))
    try:
        yield _the_bench[0]
    finally:
        _the_bench.pop().close()
        _close_unclaimed_early_benches()


@pytest.fixture
def worlds(tmp_path, bench):
    paths = {env.name: new_world(tmp_path / f"world-{env.name}.json") for env in (LIVE, REHEARSAL)}
    for name, path in paths.items():
        bench.metrics[name].world_path = str(path)
        bench.metrics[name].overrides = {}
        # Live: the background load stands in for the users, who never stop. Rehearsal: no users, so no
        # traffic until the pipeline's preflight starts the background load itself.
        bench.apps[name].reset(background_load=name == LIVE.name)
    yield paths
    for name in paths:
        bench.metrics[name].world_path = None


@pytest.fixture
def crdbs(worlds, bench):
    """One stand-in CockroachDB per environment, live nodes from its world; a secure cluster (passwords)."""
    stand_ins = {name: PipelineCrdb(path).start() for name, path in worlds.items()}
    for name, crdb in stand_ins.items():
        bench.metrics[name].crdb = crdb
    yield stand_ins
    for name, crdb in stand_ins.items():
        bench.metrics[name].crdb = None
        crdb.stop()


@pytest.fixture
def resources(worlds, crdbs, bench):
    return stand_in_resources(worlds, bench.prometheus.url, {k: a.url for k, a in bench.apps.items()},
                              {k: c.url for k, c in crdbs.items()})


@pytest.fixture
def stand_in_env(worlds, crdbs, bench, monkeypatch):
    """The same wiring, through environment variables, for subprocess-based runs."""
    env = {
        "TEST_WORLD_LIVE": str(worlds["live"]), "TEST_WORLD_REHEARSAL": str(worlds["rehearsal"]),
        "TEST_CRDB_URL_LIVE": crdbs["live"].url, "TEST_CRDB_URL_REHEARSAL": crdbs["rehearsal"].url,
        "TEST_PROMETHEUS_URL": bench.prometheus.url,
        "TEST_APP_URL_LIVE": bench.apps["live"].url, "TEST_APP_URL_REHEARSAL": bench.apps["rehearsal"].url,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture(autouse=True)
def _passwords(monkeypatch):
    monkeypatch.setenv("APP_WRITER_PASSWORD", "writer-test-password")
    monkeypatch.setenv("APP_READER_PASSWORD", "reader-test-password")
    yield
    os.environ.pop("DAGSTER_TEST_MARKER", None)
