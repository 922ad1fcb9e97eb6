"""CockroachDB SQL through psycopg 3: the one door to the database for the ops.

Retries only what CockroachDB documents as retryable: SQLSTATE 40001 (serialization conflicts) and dropped
connections. Never retries syntax, permission or other errors: they would fail the same way again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
from psycopg import sql as psql
from psycopg.rows import dict_row

from ..sqlscript import load_script

RETRYABLE_SQLSTATES = {"40001", "40003"}  # 40003: ambiguous result; our statements are idempotent
ZONE_TARGETS_DATA = ("RANGE default",)
# System data has its own zones (defaults 5 replicas); all of them follow the phase's system RF.
ZONE_TARGETS_SYSTEM = ("DATABASE system", "RANGE meta", "RANGE system", "RANGE liveness")


class SqlError(RuntimeError):
    """A statement failed for a reason retrying cannot fix; the message names the statement."""


@dataclass(frozen=True)
class RangeReplicas:
    range_id: int
    voters: int


@dataclass(frozen=True)
class BackupInfo:
    path: str  # the subdirectory inside the collection, as SHOW BACKUPS IN lists it


def collection_uri(base: str, *parts: str) -> str:
    """Append path segments to a backup URI, keeping its query string (s3://b/p?AUTH=implicit).

    Plain string work on purpose: urlunsplit would turn userfile:///x into userfile:/x.
    """
    head, sep, query = base.partition("?")
    return "/".join([head.rstrip("/"), *[p.strip("/") for p in parts]]) + sep + query


def _is_retryable(exc: Exception) -> bool:
    """40001/40003, connection failures (08xxx or no SQLSTATE at all) and node shutdowns (57P0x)."""
    if isinstance(exc, ConnectionError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is None:
        return isinstance(exc, psycopg.OperationalError)
    return sqlstate in RETRYABLE_SQLSTATES or sqlstate.startswith(("08", "57P"))


class CrdbSqlResource(dg.ConfigurableResource):
    """Admin SQL access to the cluster (root or an admin user, over TLS on real clusters).

    `url` is a libpq URL such as
    postgresql://root@crdb-writer.crdb:26257/defaultdb?sslmode=verify-full&sslrootcert=...&sslcert=...&sslkey=...
    and comes from the environment (CRDB_ADMIN_URL), never from source.
    """

    url: str
    database: str = "app"
    connect_timeout_seconds: int = 10
    max_attempts: int = 5
    retry_base_seconds: float = 0.2
    backup_uri: str = "userfile:///crdb-evolution-backups"
    replication_timeout_seconds: float = 900.0
    replication_poll_seconds: float = 5.0

    # --- connections and retries -------------------------------------------------------------------------

    @contextmanager
    def connect(self, database: str | None = None) -> Iterator[psycopg.Connection]:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": self.connect_timeout_seconds,
                                  "row_factory": dict_row, "application_name": "crdb-evolution-pipeline"}
        if database:
            kwargs["dbname"] = database
        try:
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.OperationalError as exc:
            message = f"cannot connect to CockroachDB at {_redact(self.url)}: {exc}".strip()
            if _is_retryable(exc):
                raise ConnectionError(message) from exc
            raise SqlError(f"{message} (check the user, password and certificates in CRDB_ADMIN_URL)") from exc
        try:
            yield conn
        finally:
            conn.close()

    def _with_retries(self, what: str, fn, attempts: int | None = None):
        delay = self.retry_base_seconds
        attempts = attempts or self.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except (psycopg.Error, ConnectionError) as exc:
                if not _is_retryable(exc):
                    raise SqlError(f"{what} failed: {exc}".strip()) from exc
                if attempt == attempts:
                    raise SqlError(f"{what} still failing after {attempt} attempts: {exc}".strip()) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def execute(self, statement: str | psql.Composable, params: dict | None = None, *,
                database: str | None = None, retry: bool = True) -> list[dict]:
        """Run one statement (with retries unless retry=False) and return its rows, if any."""

        def run():
            # ClientCursor binds parameters client-side, so they also work in DDL such as
            # ALTER USER ... WITH PASSWORD, on CockroachDB and PostgreSQL alike.
            with self.connect(database) as conn, psycopg.ClientCursor(conn) as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []

        if not retry:
            return self._with_retries(_describe(statement), run, attempts=1)
        return self._with_retries(_describe(statement), run)

    # --- what the ops need ---------------------------------------------------------------------------------

    def database_exists(self, name: str | None = None) -> bool:
        rows = self.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %(db)s",
                            {"db": name or self.database})
        return bool(rows)

    def ensure_database(self) -> None:
        self.execute(psql.SQL("CREATE DATABASE IF NOT EXISTS {}").format(psql.Identifier(self.database)))

    def ensure_login_user(self, user: str, password: str) -> bool:
        """Create `user` if missing and (re)set its password. Returns True when it created the user."""
        exists = self.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %(u)s", {"u": user})
        if not exists:
            try:
                # Plain CREATE USER: PostgreSQL has no IF NOT EXISTS for it.
                self.execute(psql.SQL("CREATE USER {}").format(psql.Identifier(user)))
            except SqlError as exc:
                # Already there: an earlier attempt committed but its reply was lost (retried on
                # 40003/08xxx), or another run created it in between. Either way the goal is met.
                if not isinstance(exc.__cause__, psycopg.errors.DuplicateObject):
                    raise
        self.execute(psql.SQL("ALTER USER {} WITH PASSWORD {}").format(psql.Identifier(user),
                                                                      psql.Placeholder("password")),
                     {"password": password})
        return not exists

    def run_script(self, path) -> int:
        """Run a phase SQL file inside the app database, statement by statement. Returns the count.

        The files hold no secrets and no parameters: passwords are set by ensure_login_user."""
        statements = load_script(path)
        for statement in statements:
            self.execute(statement, database=self.database)
        return len(statements)

    def set_zone_replicas(self, target: str, replicas: int) -> None:
        """ALTER ... CONFIGURE ZONE USING num_replicas: idempotent, the zone-config way to set the RF."""
        if target not in ZONE_TARGETS_DATA + ZONE_TARGETS_SYSTEM:
            raise SqlError(f"unknown zone target {target!r}")
        self.execute(f"ALTER {target} CONFIGURE ZONE USING num_replicas = {int(replicas)}")

    def zone_replicas(self, target: str) -> int | None:
        rows = self.execute(f"SHOW ZONE CONFIGURATION FROM {target}")
        if not rows:
            return None
        return parse_num_replicas(rows[0].get("raw_config_sql") or "")

    def range_voters(self, scope: str) -> list[RangeReplicas]:
        """Voting replicas per range: scope 'cluster' (every range, system ones included) or a database.

        Without WITH DETAILS: voting_replicas is always returned, and DETAILS (sizes, leaseholders)
        fetches data across nodes, a large overhead for a statement polled while the cluster rebalances.
        """
        if scope == "cluster":
            stmt = "SHOW CLUSTER RANGES"
        else:
            stmt = psql.SQL("SHOW RANGES FROM DATABASE {}").format(psql.Identifier(scope))
        return [RangeReplicas(int(r["range_id"]), len(r["voting_replicas"] or [])) for r in self.execute(stmt)]

    def backups_in(self, uri: str) -> list[BackupInfo]:
        try:
            rows = self.execute("SHOW BACKUPS IN %(uri)s", {"uri": uri})
        except SqlError as exc:
            # An empty collection is reported as "not found" by some versions: treat it as no backups.
            if "does not exist" in str(exc) or "not found" in str(exc) or "no such file" in str(exc).lower():
                return []
            raise
        return [BackupInfo(str(next(iter(r.values())))) for r in rows]

    def backup_into(self, uri: str) -> None:
        # A consistent snapshot slightly in the past keeps the backup from contending with live writes.
        # Never retried here: BACKUP runs as a job that outlives a broken connection, and a blind retry
        # would start a second full backup. The backup op decides what to do (see ops/backup.py).
        self.execute("BACKUP INTO %(uri)s AS OF SYSTEM TIME '-10s'", {"uri": uri}, retry=False)


def parse_num_replicas(raw_config_sql: str) -> int | None:
    m = re.search(r"num_replicas\s*=\s*(\d+)", raw_config_sql)
    return int(m.group(1)) if m else None


def _describe(statement) -> str:
    text = statement if isinstance(statement, str) else statement.as_string(None)
    text = " ".join(text.split())
    return f"SQL `{text[:120]}`"


def _redact(url: str) -> str:
    u = urlsplit(url)
    if u.password:
        netloc = u.netloc.replace(f":{u.password}@", ":***@")
        return urlunsplit((u.scheme, netloc, u.path, "", ""))
    return urlunsplit((u.scheme, u.netloc, u.path, "", ""))
