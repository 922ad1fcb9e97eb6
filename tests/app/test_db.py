"""Database layer against the real PostgreSQL: bounded retries on retryable SQLSTATEs, 503 mapping."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from psycopg import errors

from sample_app.db import Database, DatabaseRefused, DatabaseUnavailable, is_retryable
from sample_app.metrics import AppMetrics
from sample_app.settings import Settings
from sample_app.telemetry import Telemetry
from sample_app.timeline import Timeline

from .conftest import app_env


def with_db(pg, coro_fn, **env):
    async def main():
        settings = Settings.from_env(app_env(pg, **env))
        ref = {}
        telemetry = Telemetry(AppMetrics(lambda: ref["db"].stats()), Timeline())
        db = ref["db"] = Database(settings, telemetry)
        await db.open()
        try:
            return await coro_fn(db, telemetry)
        finally:
            await db.close()

    return asyncio.run(main())


def test_serialization_failures_are_retried_then_succeed(pg):
    attempts = []

    async def scenario(db, telemetry):
        async def work(conn):
            attempts.append(1)
            if len(attempts) < 3:
                # What CockroachDB sends for a retryable conflict (SQLSTATE 40001).
                raise errors.SerializationFailure(
                    "restart transaction: TransactionRetryWithProtoRefreshError"
                )
            return (await (await conn.execute("SELECT 1")).fetchone())[0]

        result = await db.run("writer", work, retries=5)
        return result, telemetry.metrics.db_errors.labels("writer", "40001")._value.get()

    result, counted = with_db(pg, scenario)
    assert result == 1 and len(attempts) == 3 and counted == 2


def test_retries_are_bounded(pg):
    attempts = []

    async def scenario(db, telemetry):
        async def work(conn):
            attempts.append(1)
            raise errors.SerializationFailure("always conflicting")

        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable) as exc:
            await db.run("writer", work, retries=4)
        return exc.value, time.perf_counter() - started

    exc, elapsed = with_db(pg, scenario)
    assert len(attempts) == 5 and exc.sqlstate == "40001"
    assert elapsed < 2.5  # jittered backoff capped at 0.5 s per attempt


def test_non_retryable_errors_are_not_retried(pg):
    async def scenario(db, telemetry):
        with pytest.raises(DatabaseRefused) as exc:
            await db.fetch("writer", "SELECT * FROM no_such_table", retries=5)
        return exc.value

    assert with_db(pg, scenario).sqlstate == "42P01"


def test_unreachable_database_is_503_within_the_pool_timeout(pg):
    async def scenario(db, telemetry):
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable) as exc:
            await db.fetch("reader", "SELECT 1", retries=3)
        return exc.value, time.perf_counter() - started, telemetry.metrics.db_errors.labels("reader", "08001")

    closed = f"postgresql://app_ro_01:x@127.0.0.1:{_closed_port()}/app"
    exc, elapsed, counter = with_db(pg, scenario, APP_DB_READER_URL=closed)
    assert exc.sqlstate == "08001" and elapsed < 3.0 and counter._value.get() == 1


def _closed_port() -> int:
    from tests.support.net import free_port

    return free_port()


def test_retry_classification():
    assert is_retryable(errors.SerializationFailure())
    assert is_retryable(errors.AdminShutdown())  # 57P01: server restarting
    assert is_retryable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert not is_retryable(errors.InsufficientPrivilege())
    assert not is_retryable(errors.UniqueViolation())
