"""Resources for running the real pipeline against the stand-in world, configured from env variables.

Used in-process by the tests, by reconstructable jobs (execute_job runs steps in subprocesses) and by the
end-to-end code location that `dagster dev` loads; hence configuration through the environment.
"""

from __future__ import annotations

import os

from evolution_pipeline.environments import LIVE, REHEARSAL
from evolution_pipeline.resources.grafana import GrafanaResource
from evolution_pipeline.resources.prometheus import PrometheusResource
from evolution_pipeline.resources.run_state import InstanceStateIOManager
from evolution_pipeline.resources.sample_app import SampleAppResource
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from tests.doubles.pipeline_world import WorldClusterResource

CLUSTER_LABEL = {LIVE: "crdb-test-live", REHEARSAL: "crdb-test-rehearsal"}
# The shortest window a phase's checks judge (the product's default is 60 s). Every phase run in the suite waits
# it out, so it is the suite's largest fixed cost: 3 s still holds 3 scrapes (1 s apart) for increase() and
# histogram_quantile(), and ~60 requests of the bench's background load (20 per second).
WINDOW_SECONDS = 3


def stand_in_resources(worlds: dict, prometheus_url: str, app_urls: dict, crdb_urls: dict, *, settle: float = 15.0,
                       ready_timeout: float = 10.0, replication_timeout: float = 10.0,
                       grafana_url: str = "http://grafana.test:3000") -> dict:
    # The production IO manager (outputs handed on through the instance's event log), so every test runs
    # the steps' hand-over as Kubernetes does, not through a disk the runs happen to share.
    resources = {"io_manager": InstanceStateIOManager()}
    for env in (LIVE, REHEARSAL):
        resources[env.resource_key("cluster")] = WorldClusterResource(
            world_path=str(worlds[env.name]), environment=env.name,
            ready_timeout_seconds=ready_timeout, poll_interval_seconds=0.05)
        # The real resource against the environment's stand-in CockroachDB (tests/pipeline/crdb_stand_in.py).
        resources[env.resource_key("crdb")] = CrdbSqlResource(
            url=crdb_urls[env.name], replication_timeout_seconds=replication_timeout, replication_poll_seconds=0.05,
            backup_uri=f"nodelocal://1/test-backups-{env.name}", max_attempts=3, retry_base_seconds=0.01)
        resources[env.resource_key("prometheus")] = PrometheusResource(
            url=prometheus_url, cluster_label=CLUSTER_LABEL[env], check_settle_seconds=settle,
            check_poll_seconds=0.5, min_window_seconds=WINDOW_SECONDS,
            # The bench's app shares 2 cores with 4 pytest-xdist workers and a 3 s window holds ~30 logins, so
            # its p99 is nearly the slowest request: a scheduling stall, seen up to ~250 ms at a load of 6 on 2
            # cores. 500 ms of slack keeps the latency gate quiet about that (test_latency_rules.py covers the
            # product's 10 ms; test_latency.py slows the reader by 1.5 s, far over any limit this gives).
            app_latency_slack_seconds=0.5)
        resources[env.resource_key("grafana")] = GrafanaResource(url=grafana_url, cluster_label=CLUSTER_LABEL[env])
        resources[env.resource_key("sample_app")] = SampleAppResource(url=app_urls[env.name])
    return resources


def replaced(resource, **changes):
    """The same resource with some fields changed. Not model_copy(update=...): Dagster builds a resource from
    the config it was constructed with, so a model_copy's changes never reach the ops."""
    return type(resource)(**{**resource.model_dump(), **changes})


def stand_in_resources_from_env() -> dict:
    e = os.environ
    return stand_in_resources(
        {"live": e["TEST_WORLD_LIVE"], "rehearsal": e["TEST_WORLD_REHEARSAL"]},
        e["TEST_PROMETHEUS_URL"],
        {"live": e["TEST_APP_URL_LIVE"], "rehearsal": e["TEST_APP_URL_REHEARSAL"]},
        {"live": e["TEST_CRDB_URL_LIVE"], "rehearsal": e["TEST_CRDB_URL_REHEARSAL"]},
        settle=float(e.get("TEST_CHECK_SETTLE", "15")),
        grafana_url=e.get("TEST_GRAFANA_URL", "http://grafana.test:3000"),
    )


# The last job evolve_job() built, and the environment it was built from.
_last_evolve_job: list[tuple[tuple, object]] = []


def evolve_job():
    """A reconstructable job factory for execute_job (re-execution tests).

    Dagster calls a reconstructable job's factory again at each stage of a run (the plan, the run, each
    re-execution), and each call rebuilt the whole code location: ~0.4 CPU-s. The definitions are a function
    of the environment (the TEST_ wiring, the evolution file, the drills' switches) and of the phase table
    the factories read (a test may monkeypatch it, test_materialize.replace_phase), so the job built from
    the same ones is handed out again; any change builds a new one."""
    from evolution_pipeline import assets, checks
    from evolution_pipeline.definitions import build_definitions

    key = (tuple(sorted(os.environ.items())), id(assets.PHASES), id(checks.PHASES))
    if not _last_evolve_job or _last_evolve_job[0][0] != key:
        _last_evolve_job[:] = [(key, build_definitions(stand_in_resources_from_env()).resolve_job_def("evolve"))]
    return _last_evolve_job[0][1]
