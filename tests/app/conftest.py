"""Fixtures for the sample app tests: one real PostgreSQL per session, real app processes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from crdb_common.httpc import default_tls

from .appproc import AppProcess
from .pg import LocalPostgres

TEST_SALT = "test-salt-0123456789abcdef"


@pytest.fixture(scope="session")
def pg():
    # Not under pytest's tmp dir: pytest keeps that 0700, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="sample-app-pg-"))
    root.chmod(0o755)
    server = LocalPostgres(root)
    yield server
    server.close()
    shutil.rmtree(root, ignore_errors=True)


def app_env(pg: LocalPostgres, **extra: str) -> dict[str, str]:
    env = {
        "APP_DB_WRITER_URL": pg.url("app_rw_01"),
        "APP_DB_READER_URL": pg.url("app_ro_01"),
        "APP_HASH_SALT": TEST_SALT,
        "APP_DB_POOL_TIMEOUT_SECONDS": "1",
        "APP_DB_CONNECT_TIMEOUT_SECONDS": "1",
        "APP_SPIKE_MAX_SECONDS": "60",
        "APP_SPIKE_MAX_RPS": "400",
        "APP_LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def app(pg, tmp_path_factory):
    proc = AppProcess(app_env(pg), tmp_path_factory.mktemp("app") / "app.log")
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture()
def client(app):
    with httpx.Client(verify=default_tls(), base_url=app.base_url, timeout=10.0) as c:
        yield c
