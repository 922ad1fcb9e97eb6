"""Database URLs from mounted files, followed without a restart (APP_DB_WRITER_URL_FILE / _READER_URL_FILE).

Credential rotation (evolution_pipeline/rotation) publishes a path's new URL, with the other rotation user and
its new password, in the app's Secret. Kubernetes updates a Secret volume atomically: it writes the new
files into a fresh timestamped directory and swaps the `..data` symlink, and each key is a symlink through
`..data` (kubernetes/kubernetes pkg/volume/util/atomic_writer.go). So the file is polled by path and its
content compared, once a second: that sees the symlink swap, an in-place write and a rename alike, and a
URL is a few hundred bytes.

A changed, valid URL that logs in as a user right for its path moves the path to a new pool (Database.switch:
new connections use the new user, the old pool drains). Right for the path (verify_user, on the one direct
login, before anything switches): the database is the one the path uses now, the writer's user can INSERT
into login_events, the reader's can SELECT search_terms and holds no write privilege (the /readyz rules).
The reader's URL in the writer's file would have failed every /login; the writer's in the reader's file
would have made /readyz 503 on every replica. A file that cannot be read, is empty, holds an invalid URL,
a URL that cannot log in or a user wrong for the path leaves the path on its current pool; the reason is on
/readyz and in the log (one line per reason), and app_credential_file_refused{pool} is 1 meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .db import Database
from .readiness import READER_WRITE_PROBES, READER_WRITE_SQL
from .settings import Settings, SettingsError, read_url_file, url_user

log = logging.getLogger("sample_app.credentials")

POLL_SECONDS = 1.0


@dataclass
class WatchedUrl:
    pool: str  # "writer" | "reader"
    path: str
    env_name: str  # APP_DB_<POOL>_URL: what the URL is validated as
    problem: str = ""


class CredentialFollower:
    """Polls the URL files and switches the Database's pools when a file's content changes."""

    def __init__(self, db: Database, settings: Settings, metrics=None):
        self.db = db
        self.settings = settings
        self.metrics = metrics  # AppMetrics: app_credential_file_refused{pool}
        self.watched = [
            WatchedUrl(pool, path, f"APP_DB_{pool.upper()}_URL")
            for pool, path in (("writer", settings.writer_url_file), ("reader", settings.reader_url_file))
            if path
        ]
        db.credential_problems = {w.pool: "" for w in self.watched}

    async def run(self, interval: float = POLL_SECONDS) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # a bad poll must never stop the following
                log.exception("credential file poll failed")
            await asyncio.sleep(interval)

    async def poll(self) -> None:
        for w in self.watched:
            await self._check(w)

    async def _check(self, w: WatchedUrl) -> None:
        try:
            url = read_url_file(w.env_name, w.path, self.settings.allow_insecure)
        except SettingsError as exc:
            self._problem(w, str(exc))
            return
        if url == self.db.urls[w.pool]:
            self._problem(w, "")
            return
        # Changed (or a refused URL being retried: its password may be set a moment after it was published).
        database = str(conninfo_to_dict(self.db.urls[w.pool]).get("dbname", ""))
        refusal = await self.db.switch(w.pool, url, partial(verify_user, w.pool, database))
        self._problem(w, refusal or "")

    def _problem(self, w: WatchedUrl, problem: str) -> None:
        if problem and problem != w.problem:
            log.warning("%s URL file %s: %s; staying on user %s", w.pool, w.path, problem,
                        url_user(self.db.urls[w.pool]))
        elif not problem and w.problem:
            log.warning("%s URL file %s is usable again", w.pool, w.path)
        w.problem = problem
        self.db.credential_problems[w.pool] = problem
        if self.metrics is not None:
            self.metrics.credential_refused.labels(w.pool).set(1 if problem else 0)


async def verify_user(pool: str, database: str, conn: psycopg.AsyncConnection) -> str | None:
    """Why the user `conn` logged in as is wrong for `pool`, or None. Privilege functions only, no write."""
    cur = await conn.execute("SELECT current_database()")
    current = (await cur.fetchone())[0]
    if current != database:
        return f"it connects to database {current!r}, the app's is {database!r}"
    if pool == "writer":
        cur = await conn.execute("SELECT has_table_privilege(current_user, 'login_events', 'INSERT')")
        return None if (await cur.fetchone())[0] else "it cannot INSERT into login_events (a reader's URL?)"
    cur = await conn.execute("SELECT has_table_privilege(current_user, 'search_terms', 'SELECT'), "
                             + READER_WRITE_SQL.removeprefix("SELECT "))
    can_read, *writes = await cur.fetchone()
    held = [what for (what, _), has in zip(READER_WRITE_PROBES, writes) if has]
    if held:
        return "it can write (holds " + ", ".join(held) + "): the reader must be read-only (a writer's URL?)"
    return None if can_read else "it cannot SELECT from search_terms"
