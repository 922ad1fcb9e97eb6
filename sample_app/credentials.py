"""Database URLs from mounted files, followed without a restart (APP_DB_WRITER_URL_FILE / _READER_URL_FILE).

Credential rotation (evolution_pipeline/rotation) publishes a path's new URL, with the other rotation user and
its new password, in the app's Secret. Kubernetes updates a Secret volume atomically: it writes the new
files into a fresh timestamped directory and swaps the `..data` symlink, and each key is a symlink through
`..data` (kubernetes/kubernetes pkg/volume/util/atomic_writer.go). So the file is polled by path and its
content compared, once a second: that sees the symlink swap, an in-place write and a rename alike, and a
URL is a few hundred bytes.

A changed, valid URL that logs in moves the path to a new pool (Database.switch: new connections use the
new user, the old pool drains). A file that cannot be read, is empty, holds an invalid URL or a URL that
cannot log in leaves the path on its current pool; the reason is on /readyz and in the log (once per reason).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .db import Database
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

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
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
        refusal = await self.db.switch(w.pool, url)
        self._problem(w, refusal or "")

    def _problem(self, w: WatchedUrl, problem: str) -> None:
        if problem and problem != w.problem:
            log.warning("%s URL file %s: %s; staying on user %s", w.pool, w.path, problem,
                        url_user(self.db.urls[w.pool]))
        elif not problem and w.problem:
            log.warning("%s URL file %s is usable again", w.pool, w.path)
        w.problem = problem
        self.db.credential_problems[w.pool] = problem
