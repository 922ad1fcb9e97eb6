"""Environment -> Settings, validated once at start-up.

Every variable the app reads is listed in ENV_VARS (the Kubernetes manifest tests compare the
Deployment's env names against it) and documented in sample_app/README.md. Secrets (passwords in
the database URLs, the hash salt) only ever come from the environment.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from crdb_common import redact

log = logging.getLogger("sample_app.settings")

ENV_VARS: tuple[str, ...] = (
    "APP_DB_WRITER_URL",
    "APP_DB_READER_URL",
    "APP_DB_WRITER_URL_FILE",
    "APP_DB_READER_URL_FILE",
    "APP_DB_WRITER_POOL_MIN",
    "APP_DB_WRITER_POOL_MAX",
    "APP_DB_READER_POOL_MIN",
    "APP_DB_READER_POOL_MAX",
    "APP_DB_POOL_TIMEOUT_SECONDS",
    "APP_DB_CONNECT_TIMEOUT_SECONDS",
    "APP_DB_ALLOW_INSECURE",
    "APP_HASH_SALT",
    "APP_FOLLOWER_READS",
    "APP_LOGIN_MAX_RETRIES",
    "APP_SEARCH_LIMIT",
    "APP_SPIKE_MAX_SECONDS",
    "APP_SPIKE_MAX_RPS",
    "APP_SPIKE_MAX_INFLIGHT",
    "APP_BACKGROUND_RPS",
    "APP_READERS_RPS",
    "APP_WRITERS_RPS",
    "APP_TIMELINE_SECONDS",
    "APP_REQUEST_TIMEOUT_SECONDS",
    "APP_LOG_LEVEL",
)

# TLS modes that actually encrypt; anything weaker is refused for non-local hosts.
SECURE_SSLMODES = {"require", "verify-ca", "verify-full"}
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
SEARCH_LIMIT_CEILING = 50


class SettingsError(ValueError):
    """Raised with a message naming the variable and what to set it to."""


@dataclass(frozen=True)
class Settings:
    # No defaults here: from_env is the one place that knows them (sample_app/README.md lists them).
    writer_url: str  # the URL at start-up; with a _FILE, sample_app/credentials.py follows later changes
    reader_url: str
    writer_url_file: str | None
    reader_url_file: str | None
    writer_pool_min: int
    writer_pool_max: int
    reader_pool_min: int
    reader_pool_max: int
    pool_timeout_seconds: float
    connect_timeout_seconds: int
    allow_insecure: bool
    hash_salt: str
    hash_salt_from_env: bool
    follower_reads: str  # auto | true | false (sample_app/follower_reads.py)
    login_max_retries: int
    search_limit: int
    spike_max_seconds: int
    spike_max_rps: int
    spike_max_inflight: int
    background_rps: float
    readers_rps: float
    writers_rps: float
    timeline_seconds: int
    request_timeout_seconds: float  # a request's total time, first byte to answer (sample_app/server.py)
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        reader = _Reader(env)
        allow_insecure = reader.boolean("APP_DB_ALLOW_INSECURE", False)
        salt = env.get("APP_HASH_SALT", "")
        if salt and len(salt) < 16:
            raise SettingsError(
                "APP_HASH_SALT must be at least 16 characters (use e.g. `openssl rand -hex 16`)"
            )
        if not salt:
            # No default secret in source: an ephemeral random salt keeps hashes unlinkable, at the
            # price of hashes changing across restarts. Production sets APP_HASH_SALT from a Secret.
            log.warning("APP_HASH_SALT is not set: using a random per-process salt")
        settings = cls(
            writer_url=reader.db_url_or_file("APP_DB_WRITER_URL", allow_insecure),
            reader_url=reader.db_url_or_file("APP_DB_READER_URL", allow_insecure),
            writer_url_file=reader.raw("APP_DB_WRITER_URL_FILE"),
            reader_url_file=reader.raw("APP_DB_READER_URL_FILE"),
            writer_pool_min=reader.integer("APP_DB_WRITER_POOL_MIN", 1, 0, 200),
            writer_pool_max=reader.integer("APP_DB_WRITER_POOL_MAX", 10, 1, 200),
            reader_pool_min=reader.integer("APP_DB_READER_POOL_MIN", 1, 0, 200),
            reader_pool_max=reader.integer("APP_DB_READER_POOL_MAX", 10, 1, 200),
            pool_timeout_seconds=reader.number("APP_DB_POOL_TIMEOUT_SECONDS", 2.0, 0.1, 60),
            connect_timeout_seconds=reader.integer("APP_DB_CONNECT_TIMEOUT_SECONDS", 3, 1, 60),
            allow_insecure=allow_insecure,
            hash_salt=salt or secrets.token_hex(16),
            hash_salt_from_env=bool(salt),
            follower_reads=reader.follower_reads("APP_FOLLOWER_READS"),
            login_max_retries=reader.integer("APP_LOGIN_MAX_RETRIES", 5, 0, 20),
            search_limit=reader.integer("APP_SEARCH_LIMIT", 20, 1, SEARCH_LIMIT_CEILING),
            spike_max_seconds=reader.integer("APP_SPIKE_MAX_SECONDS", 120, 1, 3600),
            spike_max_rps=reader.integer("APP_SPIKE_MAX_RPS", 1000, 1, 10000),
            spike_max_inflight=reader.integer("APP_SPIKE_MAX_INFLIGHT", 256, 1, 10000),
            background_rps=reader.number("APP_BACKGROUND_RPS", 10.0, 0.1, 1000),
            readers_rps=reader.number("APP_READERS_RPS", 40.0, 0.1, 1000),
            writers_rps=reader.number("APP_WRITERS_RPS", 15.0, 0.1, 1000),
            timeline_seconds=reader.integer("APP_TIMELINE_SECONDS", 300, 10, 3600),
            request_timeout_seconds=reader.number("APP_REQUEST_TIMEOUT_SECONDS", 30.0, 1, 600),
            log_level=reader.choice("APP_LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"}),
        )
        for kind in ("writer", "reader"):
            lo, hi = getattr(settings, f"{kind}_pool_min"), getattr(settings, f"{kind}_pool_max")
            if lo > hi:
                name = f"APP_DB_{kind.upper()}_POOL_MIN"
                raise SettingsError(f"{name}={lo} is larger than APP_DB_{kind.upper()}_POOL_MAX={hi}")
        return settings


class _Reader:
    """Small typed getters so every error names the variable and the accepted range."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str) -> str | None:
        assert name in ENV_VARS, f"{name} must be listed in ENV_VARS"
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        return self._ranged(name, default, lo, hi, int, "an integer")

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        return self._ranged(name, default, lo, hi, float, "a number")

    def _ranged(self, name: str, default, lo, hi, parse, kind: str):
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = parse(value)
        except ValueError:
            raise SettingsError(f"{name} must be {kind} between {lo} and {hi}, got {value!r}") from None
        if not lo <= number <= hi:
            raise SettingsError(f"{name} must be between {lo} and {hi}, got {number}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {value!r}")

    def follower_reads(self, name: str) -> str:
        """auto (the default), or a boolean spelled any way boolean() accepts, as "true"/"false"."""
        value = self.raw(name)
        if value is None or value.lower() == "auto":
            return "auto"
        try:
            return "true" if self.boolean(name, False) else "false"
        except SettingsError:
            raise SettingsError(f"{name} must be auto, true or false, got {value!r}") from None

    def choice(self, name: str, default: str, allowed: set[str]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value.upper() not in allowed:
            raise SettingsError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
        return value.upper()

    def db_url_or_file(self, name: str, allow_insecure: bool) -> str:
        """<name> from the environment, or read from the file <name>_FILE names (a mounted Secret key)."""
        path = self.raw(name + "_FILE")
        if path is None:
            return self.db_url(name, allow_insecure)
        if self.raw(name) is not None:
            raise SettingsError(f"set {name} or {name}_FILE, not both")
        return read_url_file(name, path, allow_insecure)

    def db_url(self, name: str, allow_insecure: bool) -> str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(
                f"{name} is not set: give a libpq URL such as "
                "postgresql://app_rw_01:PASSWORD@crdb-writer:26257/app?sslmode=verify-full&sslrootcert=/certs/ca.crt"
            )
        if not value.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"{name} must be a postgresql:// URL")
        try:
            params = conninfo_to_dict(value)
        except psycopg.ProgrammingError as exc:  # malformed URL; libpq quotes the bad part, maybe the password
            raise SettingsError(f"{name} is not a valid connection URL: {redact.text(str(exc), value)}") from None
        if not params.get("dbname"):
            raise SettingsError(f"{name} must name the database, e.g. .../app")
        for port in str(params.get("port") or "").split(","):
            # libpq parses the port only when it connects: "99999x" would fail every connection for ever.
            if port and not (port.isdigit() and 1 <= int(port) <= 65535):
                raise SettingsError(f"{name} has port {port[:20]!r}: a port is a number from 1 to 65535")
        host = str(params.get("host", ""))
        local = host.startswith("/") or all(h in LOCAL_HOSTS for h in host.split(","))
        if not local and params.get("sslmode") not in SECURE_SSLMODES and not allow_insecure:
            raise SettingsError(
                f"{name} points at {host} without TLS: add sslmode=verify-full&sslrootcert=... "
                "(or set APP_DB_ALLOW_INSECURE=true for an insecure demo cluster)"
            )
        return value


def read_url_file(name: str, path: str, allow_insecure: bool) -> str:
    """The URL in `path`, validated exactly like the variable `name` (SettingsError says what is wrong)."""
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read(64 * 1024).strip()  # a URL, never megabytes: a wrong mount must not eat memory
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}_FILE: cannot read {path}: {exc}") from None
    if not content:
        raise SettingsError(f"{name}_FILE: {path} is empty (it must hold one postgresql:// URL)")
    try:
        return _Reader({name: content}).db_url(name, allow_insecure)
    except SettingsError as exc:
        raise SettingsError(f"{name}_FILE ({path}): {exc}") from None


def url_user(url: str) -> str:
    """The user a libpq URL logs in as ("" when it names none): shown on /readyz, never the password."""
    try:
        return str(conninfo_to_dict(url).get("user", ""))
    except psycopg.ProgrammingError:
        return ""
