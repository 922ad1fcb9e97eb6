"""Credential rotation against stand-ins: a real PostgreSQL (the role model's SQL, real logins), the real app
following its URL files, the URL files or a Kubernetes API stand-in's Secret as the store."""

from __future__ import annotations

import pytest

from evolution_pipeline.resources.sample_app import SampleAppResource
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from evolution_pipeline.roles import APP_PATHS
from evolution_pipeline.rotation.publish import FileCredentialStore
from tests.app.appproc import AppProcess
from tests.app.conftest import app_env, pg  # noqa: F401 - the session's PostgreSQL fixture


def standby_without_password(pg) -> None:  # noqa: F811
    """As the phases leave it: the path's first user has the password in the URL, the second none."""
    pg.restore_access()
    for path in APP_PATHS:
        pg.execute(f"ALTER ROLE {path.users[1]} PASSWORD NULL", dbname="postgres")


@pytest.fixture
def admin(pg) -> CrdbSqlResource:  # noqa: F811
    return CrdbSqlResource(url=pg.admin_conninfo("postgres"), database="app", max_attempts=2,
                           retry_base_seconds=0.01)


@pytest.fixture
def store(pg, tmp_path) -> FileCredentialStore:  # noqa: F811
    standby_without_password(pg)
    s = FileCredentialStore(directory=str(tmp_path / "credentials"))
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "writer-url").write_text(pg.url("app_rw_01") + "\n")
    (tmp_path / "credentials" / "reader-url").write_text(pg.url("app_ro_01") + "\n")
    yield s
    pg.restore_access()


@pytest.fixture
def app(pg, store, tmp_path):  # noqa: F811
    env = app_env(pg, APP_DB_WRITER_URL_FILE=str(store.file(APP_PATHS[0])),
                  APP_DB_READER_URL_FILE=str(store.file(APP_PATHS[1])))
    del env["APP_DB_WRITER_URL"], env["APP_DB_READER_URL"]
    proc = AppProcess(env, tmp_path / "app.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def app_resource(app) -> SampleAppResource:
    return SampleAppResource(url=app.base_url)
