"""The /readyz checks: the writer works, the reader works, and the reader user cannot write.

Until the read-only user exists (phase 1 creates it) the reader's login is refused: the app then reads
through the writer and /readyz answers 200 with "degraded": ["reader"] (see Database.probe_reader).

"Cannot write" is a privilege check (has_table_privilege / has_schema_privilege, same answer on
PostgreSQL and CockroachDB, true for superusers/admins too), never a real write: a probe must not
change data.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .db import SQLSTATE_NO_CONNECTION, Database, DatabaseRefused, DatabaseUnavailable

TABLES = ("login_events", "search_terms")
WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE")

WRITER_SQL = "SELECT has_table_privilege(current_user, 'login_events', 'INSERT')"
READER_SQL = "SELECT count(*) FROM (SELECT 1 FROM search_terms LIMIT 1) AS probe"
# (what, SQL) pairs: table write privileges, and CREATE on the schema (a user who can create tables
# can write into them: CockroachDB grants it to every user through the `public` role by default,
# which phase 1's SQL revokes).
READER_WRITE_PROBES = [
    (f"{p} on {t}", f"has_table_privilege(current_user, '{t}', '{p}')")
    for t in TABLES
    for p in WRITE_PRIVILEGES
] + [("CREATE on schema public", "has_schema_privilege(current_user, 'public', 'CREATE')")]
READER_WRITE_SQL = "SELECT " + ", ".join(sql for _, sql in READER_WRITE_PROBES)


async def _writer(db: Database) -> str | None:
    rows = await db.fetch("writer", WRITER_SQL)
    return None if rows and rows[0][0] else "writer user cannot INSERT into login_events"


async def _reader(db: Database) -> str | None:
    rows = await db.fetch("reader", READER_SQL)
    return None if rows and rows[0][0] == 1 else "search_terms is empty: run sql/00-bootstrap.sql"


async def _reader_read_only(db: Database) -> str | None:
    rows = await db.fetch("reader", READER_WRITE_SQL)
    held = [what for (what, _), has in zip(READER_WRITE_PROBES, rows[0]) if has]
    return None if not held else "reader user can write: holds " + ", ".join(held)


CHECKS = {"writer": _writer, "reader": _reader, "reader_read_only": _reader_read_only}


async def _diagnose(db: Database, pool: str, timeout: float) -> str | None:
    try:
        return await asyncio.wait_for(db.diagnose(pool), timeout)
    except TimeoutError:
        return f"a direct connection attempt did not finish within {timeout:.1f}s"


async def _run_one(name: str, db: Database, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        problem = await asyncio.wait_for(CHECKS[name](db), timeout)
    except (DatabaseUnavailable, DatabaseRefused) as exc:
        problem = f"{exc.message} (SQLSTATE {exc.sqlstate})"
        if exc.sqlstate == SQLSTATE_NO_CONNECTION:
            # Within the same budget: /readyz must answer before a prober (5 s) gives up.
            remaining = max(0.5, timeout - (time.perf_counter() - started))
            reason = await _diagnose(db, exc.pool, remaining)
            if reason:
                problem += f": {reason}"
    except TimeoutError:
        problem = f"no answer within {timeout:.1f}s"
    result: dict[str, Any] = {"ok": problem is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if problem:
        result["detail"] = problem
    return result


READER_CHECKS = ("reader", "reader_read_only")


async def check(db: Database) -> dict[str, Any]:
    """Ready = the writer works and, once the read-only user exists, it reads and cannot write.

    Before phase 1 creates the reader's users (app_ro_01/02) its login is refused: reads go through the writer, and the app
    is ready but degraded (the reader checks are reported as skipped, never as passed).
    """
    timeout = db.settings.pool_timeout_seconds + 1.0
    # One reading of the path for the whole answer: the reader probe may switch it while the checks run, and
    # "reader_path": "reader" next to "degraded": ["reader"] would contradict itself (seen under load).
    reader_path = db.reader_path
    fallback = reader_path == "writer"
    names = [n for n in CHECKS if not (fallback and n in READER_CHECKS)]
    results = await asyncio.gather(*(_run_one(n, db, timeout) for n in names))
    checks = dict(zip(names, results))
    if fallback:
        for name in READER_CHECKS:
            checks[name] = {"ok": None, "skipped": True, "detail": db.reader_note}
    follower = db.follower_reads_status()  # read after the checks: they may open the first reader connection
    # A published URL the app could not take is a warning, not unreadiness: the app still serves on the
    # current user, and failing every pod on one bad Secret would turn a rotation mistake into an outage.
    refused = [f"{pool} URL file: {why}; still on {db.users()[pool]}"
               for pool, why in db.credential_problems.items() if why]
    warnings = ([follower.warning] if follower.warning else []) + refused
    return {
        "ready": all(r["ok"] for r in results),
        "degraded": ["reader"] if fallback else [],
        "reader_path": reader_path,
        "follower_reads": follower.on,
        "follower_reads_reason": follower.reason,
        "warnings": warnings,
        # Which rotation user each path logs in as now, and the last switch (from, to, drained_seconds).
        "db_users": db.users(),
        "credentials": {pool: {"user": user, "problem": db.credential_problems.get(pool, ""),
                               "last_switch": db.switches.get(pool)} for pool, user in db.users().items()},
        "checks": checks,
    }
