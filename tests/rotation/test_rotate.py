"""Rotator end to end on a real PostgreSQL and the real app: zero failed requests, never a lockout."""

from __future__ import annotations

import shutil
import threading
import time

import psycopg
import pytest

from crdb_common import httpc
from evolution_pipeline.resources.sample_app import SampleAppResource
from evolution_pipeline.roles import APP_PATHS, READER, WRITER
from evolution_pipeline.rotation.publish import FileCredentialStore
from evolution_pipeline.rotation.rotate import RotationError, Rotator, login_error
from tests.app.appproc import AppProcess
from tests.app.conftest import app_env
from tests.app.load import Load

pytestmark = pytest.mark.slow


def rotator(admin, store, app_resource, **kw) -> tuple[Rotator, list[str]]:
    logs: list[str] = []
    kw = {"switch_timeout_seconds": 30, "poll_seconds": 0.2, "confirmations": 3, **kw}
    return Rotator(admin, store, app_resource, logs.append, **kw), logs


def users(app) -> dict:
    return httpc.get(app.base_url + "/readyz", timeout=5).json()["db_users"]


def test_two_rotations_under_load_fail_no_request(admin, store, app, app_resource, pg):
    r, logs = rotator(admin, store, app_resource)
    first_urls = {p.name: store.read(p) for p in APP_PATHS}
    with Load(app.base_url) as load:
        time.sleep(1.0)
        started = time.monotonic()
        first = [r.rotate(p) for p in APP_PATHS]
        second = [r.rotate(p) for p in APP_PATHS]
        took = time.monotonic() - started
        time.sleep(1.0)
    assert load.failures == [], load.failures[:5]
    assert [(x.active, x.retired) for x in first] == [("app_rw_02", "app_rw_01"), ("app_ro_02", "app_ro_01")]
    assert [(x.active, x.retired) for x in second] == [("app_rw_01", "app_rw_02"), ("app_ro_01", "app_ro_02")]
    assert all(x.retired_refused and "password authentication failed" in x.refusal for x in first + second)
    assert users(app) == {"writer": "app_rw_01", "reader": "app_ro_01"}
    # Back on the _01 users, but with new passwords: the first URLs (their old credentials) are refused.
    for url in first_urls.values():
        assert login_error(url, 3) is not None
    print(f"\nrotate_credentials under load: {load.count} requests, {len(load.failures)} failed; 4 path "
          f"rotations in {took:.1f}s, app switched in {[x.switch_seconds for x in first + second]} s")


def test_the_job_never_locks_the_app_out(admin, store, pg, tmp_path):
    """The app does not follow the files (started from the environment): the wait times out, and the user
    it runs on is untouched: its credential still logs in and the app still serves."""
    env = app_env(pg)  # APP_DB_*_URL from the environment: nothing will move it
    app = AppProcess(env, tmp_path / "app.log")
    try:
        app.wait_ready()
        r, _ = rotator(admin, store, SampleAppResource(url=app.base_url), switch_timeout_seconds=3)
        before = store.read(WRITER)
        with Load(app.base_url) as load, pytest.raises(RotationError) as failed:
            r.rotate(WRITER)
        message = str(failed.value)
        assert "did not move its writer path to app_rw_02" in message
        assert "Nothing was changed on app_rw_01" in message and "user app_rw_01" in message
        assert login_error(before, 3) is None  # app_rw_01's credential still works
        assert load.failures == [] and load.count > 0
        assert url_user_of(store.read(WRITER)) == "app_rw_02"  # published, valid, waiting for the app
        assert login_error(store.read(WRITER), 3) is None
    finally:
        app.stop()


def url_user_of(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["user"]


def test_a_rerun_resumes_the_wait_and_finishes(admin, store, pg, tmp_path):
    """Publish reached the store, the app only sees it later (a slow kubelet sync): the first run times out,
    the re-execution resumes waiting on the same published credential and retires the old user."""
    seen = FileCredentialStore(directory=str(tmp_path / "kubelet-view"))
    shutil.copytree(store.directory, seen.directory)
    env = app_env(pg, APP_DB_WRITER_URL_FILE=str(seen.file(WRITER)), APP_DB_READER_URL_FILE=str(seen.file(READER)))
    del env["APP_DB_WRITER_URL"], env["APP_DB_READER_URL"]
    app = AppProcess(env, tmp_path / "app.log")
    try:
        app.wait_ready()
        r, logs = rotator(admin, store, SampleAppResource(url=app.base_url), switch_timeout_seconds=2)
        with pytest.raises(RotationError):
            r.rotate(WRITER)
        published = store.read(WRITER)
        sync = threading.Timer(1.5, lambda: shutil.copy(store.file(WRITER), seen.file(WRITER)))
        sync.start()
        with Load(app.base_url) as load:
            r.switch_timeout_seconds = 30
            result = r.rotate(WRITER)
        sync.join()
        assert result.resumed and result.active == "app_rw_02" and result.retired_refused
        assert result.verified_with.startswith("a wrong password")
        assert store.read(WRITER) == published  # the same credential: nothing published twice
        assert any("resuming the wait" in line for line in logs)
        assert load.failures == []
    finally:
        app.stop()


def test_a_url_outside_the_rotation_users_is_refused(admin, store, app_resource, pg):
    store.file(WRITER).write_text(pg.url("app_ro_01"))
    r, _ = rotator(admin, store, app_resource)
    with pytest.raises(RotationError, match="not as one of the writer path's rotation users"):
        r.rotate(WRITER)


def test_insecure_cluster_is_refused(admin, store, app_resource):
    r, _ = rotator(admin.model_copy(update={"insecure": True}), store, app_resource)
    with pytest.raises(RotationError, match="insecure"):
        r.rotate(WRITER)
