"""Follower reads on the reader path: on whenever the reader's connection is to CockroachDB.

How the app knows: CockroachDB announces itself in the connection's start-up. Among the run-time
parameters it reports with ParameterStatus messages is `crdb_version` (cockroachdb/cockroach
pkg/sql/pgwire/conn.go, statusReportParams: "crdb_version", // CockroachDB extension), whose value
is build.GetInfo().Short() (pkg/sql/vars.go `crdb_version`; pkg/build/info.go Info.Short:
"CockroachDB <distribution> <tag> (<platform>, built <time>, <go version>)"). PostgreSQL reports no
such parameter. psycopg's own CockroachDB detection uses the same signal (psycopg/crdb/connection.py,
CrdbConnection.is_crdb). libpq keeps the start-up parameters, so asking costs no round trip.

APP_FOLLOWER_READS: auto (default) = on exactly when the reader's connection is to CockroachDB;
false = never; true = wanted, but PostgreSQL has no AS OF SYSTEM TIME, so against PostgreSQL it is
downgraded to off and /readyz carries a warning (the app starts before any database is reachable,
so it cannot refuse this at start-up). Only the reader pool ever reads at a follower timestamp:
while reads fall back to the writer (no read-only user yet) they are plain reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODES = ("auto", "true", "false")
CRDB_VERSION_PARAMETER = b"crdb_version"
_TAG = re.compile(r"\bv\d+\.\d+\.\d+[-.\w]*")


def crdb_version(pgconn) -> str | None:
    """The server's `crdb_version` start-up parameter: the full CockroachDB build string, or None."""
    raw = pgconn.parameter_status(CRDB_VERSION_PARAMETER)
    return raw.decode("utf-8", "replace") if raw else None


def short_name(crdb: str | None, pg_server_version: str | None) -> str:
    """"CockroachDB v26.2.1" or "PostgreSQL 16.4": what /readyz and the page show."""
    if crdb:
        tag = _TAG.search(crdb)
        return f"CockroachDB {tag.group(0)}" if tag else "CockroachDB"
    return f"PostgreSQL {pg_server_version}" if pg_server_version else "PostgreSQL"


@dataclass(frozen=True)
class Server:
    """What the reader pool's newest connection reported at start-up."""

    crdb_version: str | None
    server_version: str | None  # the server_version parameter (CockroachDB reports a PostgreSQL one)

    @property
    def is_crdb(self) -> bool:
        return bool(self.crdb_version)

    @property
    def name(self) -> str:
        return short_name(self.crdb_version, self.server_version)


def server_of(pgconn) -> Server:
    raw = pgconn.parameter_status(b"server_version")
    return Server(crdb_version(pgconn), raw.decode("utf-8", "replace") if raw else None)


def enabled(mode: str, server: Server) -> bool:
    """Whether a reader connection to `server` searches at follower_read_timestamp()."""
    return mode != "false" and server.is_crdb


@dataclass(frozen=True)
class Status:
    on: bool
    reason: str
    short: str  # a few words for the page's badge
    warning: str | None = None


def status(mode: str, server: Server | None, reader_path: str) -> Status:
    """On or off for the reads served right now, and why (for /readyz and the page)."""
    if mode == "false":
        return Status(False, "APP_FOLLOWER_READS=false", "APP_FOLLOWER_READS=false")
    if reader_path != "reader":
        return Status(
            False,
            "reads go through the writer until the read-only user exists: follower reads are for the reader path",
            "reads via the writer",
        )
    if server is None:
        return Status(False, "no reader connection yet: the server is not known", "not connected yet")
    if server.is_crdb:
        return Status(
            True,
            f"{server.name} (crdb_version start-up parameter): searches read AS OF SYSTEM TIME "
            "follower_read_timestamp(), so the replica nearest the gateway node serves them (a read replica "
            "when the connection's node holds one)",
            server.name,
        )
    if mode == "true":
        warning = (
            f"APP_FOLLOWER_READS=true but the database is {server.name}, which has no AS OF SYSTEM TIME: "
            "searches read without it; set APP_FOLLOWER_READS=auto (or false)"
        )
        return Status(False, warning, f"{server.name}: APP_FOLLOWER_READS=true ignored", warning)
    return Status(False, f"{server.name} has no AS OF SYSTEM TIME (no crdb_version start-up parameter)", server.name)
