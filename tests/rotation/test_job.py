"""The rotate_credentials job in Dagster, end to end: real PostgreSQL, the real app following its URL files,
a real Prometheus scraping the app for the blocking check, the credential store the local backend uses."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from crdb_common import httpc
from evolution_pipeline.configuration import resources_from_env
from evolution_pipeline.definitions import build_definitions
from evolution_pipeline.environments import LIVE
from evolution_pipeline.resources.prometheus import PrometheusResource
from evolution_pipeline.resources.sample_app import SampleAppResource
from evolution_pipeline.roles import READER, WRITER
from evolution_pipeline.rotation.job import (
    ASSET,
    build_rotation_asset,
    build_rotation_checks,
    rotation_schedule,
)
from evolution_pipeline.rotation.rotate import login_error
from tests.app.load import Load
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.slow

FAST = {"ops": {ASSET: {"config": {"switch_timeout_seconds": 30, "poll_seconds": 0.2, "confirmations": 3}}}}


@pytest.fixture
def prometheus(app, tmp_path):
    target = app.base_url.removeprefix("http://")
    prom = start_prometheus(tmp_path / "prometheus", {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "sample-app", "static_configs": [
            {"targets": [target], "labels": {"cluster": "crdb-live"}}]}]})
    try:
        prom.wait_for('app_requests_total{job="sample-app"}')
        yield prom
    finally:
        prom.stop()


def run(resources: dict, run_config: dict) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize([build_rotation_asset(LIVE), *build_rotation_checks(LIVE)], resources=resources,
                              run_config=run_config, instance=instance, raise_on_error=False)


def resources(admin, store, app, prometheus) -> dict:
    prom = PrometheusResource(url=prometheus.url, cluster_label="crdb-live", min_window_seconds=5,
                              check_settle_seconds=15, check_poll_seconds=1)
    return {"crdb": admin, "sample_app": SampleAppResource(url=app.base_url), "credentials": store,
            "prometheus": prom}


def test_rotate_credentials_job_under_load(admin, store, app, prometheus, pg):
    old = {p.name: store.read(p) for p in (WRITER, READER)}
    with Load(app.base_url) as load:
        time.sleep(2)
        started = time.monotonic()
        result = run(resources(admin, store, app, prometheus), FAST)
        took = time.monotonic() - started
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    mat = result.asset_materializations_for_node(ASSET)[0]
    assert mat.metadata["users"].value == {"writer": "app_rw_02", "reader": "app_ro_02"}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"app_kept_serving_during_rotation": True, "retired_credentials_refused": True}
    # The 5xx check judged the rotation's own window (at least the 5 s minimum), pinned with `@ <end>`.
    record = result.output_for_node(ASSET)
    serving = next(e for e in result.get_asset_check_evaluations()
                   if e.check_name == "app_kept_serving_during_rotation")
    window = (serving.metadata["window_start"].value, serving.metadata["window_end"].value)
    assert window == (record.started_at, max(record.finished_at, record.started_at + 5))
    assert serving.metadata["query"].value.count(f"@ {window[1]:.3f}") == 2  # 5xx and all requests
    assert all(login_error(url, 3) is not None for url in old.values())  # the retired credentials
    assert load.failures == [] and load.count > 50
    print(f"\nrotate_credentials job under load: {load.count} requests, {len(load.failures)} failed, run "
          f"{took:.1f}s (incl. the checks), switch {mat.metadata['switch_seconds'].value} s")


def test_a_timed_out_switch_fails_the_run_and_touches_nothing(admin, store, app, prometheus, pg, tmp_path):
    # The app follows files, but not these: the published credential never reaches it.
    from evolution_pipeline.rotation.publish import FileCredentialStore

    elsewhere = FileCredentialStore(directory=str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    for p in (WRITER, READER):
        elsewhere.file(p).write_text(store.read(p))
    config = {"ops": {ASSET: {"config": {"switch_timeout_seconds": 2, "poll_seconds": 0.2, "paths": ["writer"]}}}}
    result = run({**resources(admin, store, app, prometheus), "credentials": elsewhere}, config)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "writer path: the app did not move its writer path to app_rw_02" in message
    assert "Nothing was changed on app_rw_01" in message
    assert login_error(store.read(WRITER), 3) is None  # the app's credential still logs in
    assert httpc.post(app.base_url + "/login", json={"user_id": "after"}).status_code == 200
    assert result.get_asset_check_evaluations() == []  # the checks never ran on a failed rotation


def test_the_job_and_a_stopped_schedule_are_registered():
    defs = build_definitions(resources_from_env())
    for name in ("rotate_credentials", "rehearsal_rotate_credentials"):
        assert defs.resolve_job_def(name).name == name
    schedule = rotation_schedule()
    assert schedule.job_name == "rotate_credentials"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
