"""The pipeline's test bench: a real Prometheus scraping stand-in CockroachDB nodes and a stand-in app.

The stand-in nodes derive their metrics from the stand-in world on every scrape (live nodes = ready
nodes; under-replicated ranges = ranges below the allocator's target), so the blocking checks see the
consequences of what the ops did, through a real Prometheus and real PromQL.
"""

from __future__ import annotations

import os

import pytest

from evolution_pipeline.environments import LIVE, REHEARSAL
from evolution_pipeline.phases import needed_voters
from tests.doubles.app_api import AppApiDouble
from tests.doubles.crdb_metrics import CrdbMetricsCluster
from tests.doubles.pipeline_world import new_world, read_world
from tests.pipeline.stand_ins import CLUSTER_LABEL, stand_in_resources
from tests.support.prometheus import start_prometheus


class WorldMetrics:
    """Three stand-in nodes per environment whose metrics follow a world file."""

    def __init__(self):
        self.cluster = CrdbMetricsCluster(3)
        self.world_path = None
        self.overrides: dict[str, float] = {}
        for node in self.cluster.nodes:
            node.before_scrape = self._update

    def _update(self, node) -> None:
        if self.world_path is None:
            node.up = False
            return
        s = read_world(self.world_path)
        node.up = node.node_id <= s["ready"]
        under = 0
        for r in s["ranges"]:
            zone = s["zones"]["RANGE default" if r["scope"] == "app" else "RANGE system"]
            if s["ready"] and r["voters"] < needed_voters(zone, s["ready"]):
                under += 1
        # Store-level gauges are per store; report the cluster total on store 1 like a leaseholder would.
        values = {"liveness_livenodes": s["ready"], "ranges_underreplicated": under if node.node_id == 1 else 0,
                  "ranges_unavailable": 0}
        values.update(self.overrides)
        node.set(**values)


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    metrics = {LIVE.name: WorldMetrics(), REHEARSAL.name: WorldMetrics()}
    apps = {LIVE.name: AppApiDouble(), REHEARSAL.name: AppApiDouble()}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [],
    }
    for env in (LIVE, REHEARSAL):
        labels = {"cluster": CLUSTER_LABEL[env]}
        config["scrape_configs"] += [
            {"job_name": f"cockroachdb-{env.name}", "metrics_path": "/_status/vars",
             "static_configs": [{"targets": metrics[env.name].cluster.targets, "labels": labels}],
             # The checks select job="cockroachdb": rename, as relabelling in a real config would.
             "relabel_configs": [{"target_label": "job", "replacement": "cockroachdb"}]},
            {"job_name": f"sample-app-{env.name}", "static_configs": [{"targets": [apps[env.name].target],
                                                                          "labels": labels}],
             "relabel_configs": [{"target_label": "job", "replacement": "sample-app"}]},
        ]
    prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), config)
    bench = type("Bench", (), {})()
    bench.prometheus, bench.metrics, bench.apps = prom, metrics, apps
    yield bench
    prom.stop()
    for m in metrics.values():
        m.cluster.close()
    for a in apps.values():
        a.close()


@pytest.fixture
def worlds(tmp_path, bench):
    paths = {env.name: new_world(tmp_path / f"world-{env.name}.json") for env in (LIVE, REHEARSAL)}
    for name, path in paths.items():
        bench.metrics[name].world_path = str(path)
        bench.metrics[name].overrides = {}
        bench.apps[name].ready = True
        bench.apps[name].error_ratio = 0.0
        bench.apps[name].reader_path = "reader"
    yield paths
    for name in paths:
        bench.metrics[name].world_path = None


@pytest.fixture
def resources(worlds, bench):
    return stand_in_resources(worlds, bench.prometheus.url, {k: a.url for k, a in bench.apps.items()})


@pytest.fixture
def stand_in_env(worlds, bench, monkeypatch):
    """The same wiring, through environment variables, for subprocess-based runs."""
    env = {
        "TEST_WORLD_LIVE": str(worlds["live"]), "TEST_WORLD_REHEARSAL": str(worlds["rehearsal"]),
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
