"""Rotate one app path's credentials without ever locking the app out.

Per path (writer: app_rw_01/02, reader: app_ro_01/02), in this order:
  1. read the published URL (the app's Secret, or the local URL file) and the user the app uses (/readyz);
  2. take the rotation user NOT in use, give it a new random password and prove that it logs in;
  3. publish its URL (a JSON patch with a `test` precondition: a concurrent change is refused, not lost);
  4. wait until the app reports that path on the new user, its old pool drained, `confirmations` times in a
     row (the Service spreads the polls over the replicas). Timeout: fail and touch NOTHING on the user the
     app still runs on;
  5. retire the other user: its password becomes NULL (no password logs in; LOGIN stays, so the next
     rotation only has to set one), and prove the retired credential is refused.
Re-executable from any step: a run that finds a published user the app does not use yet resumes at step 4
(the published credential is checked first, and replaced if it no longer logs in); a run that finds the app
on the published user starts a new rotation. Nothing here creates or drops users (the phases do).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql as psql

from ..roles import AppPath

PASSWORD_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits; URL-safe, so it needs no escaping


class RotationError(RuntimeError):
    """The rotation stopped; the message says what it saw, what it left untouched and what to do."""


@dataclass
class PathRotation:
    path: str
    active: str  # the user the app runs on after this run
    retired: str
    resumed: bool  # a previous run had published `active` already
    switch_seconds: float  # from publishing (or resuming) to the app confirmed on `active`
    retired_refused: bool
    refusal: str  # what the server answered the retired credential
    verified_with: str  # "the retired URL" or "a wrong password" (resumed: the old URL is gone)
    notes: list[str] = field(default_factory=list)


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` with its user and password replaced; host, database and TLS parameters unchanged."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def url_user(url: str) -> str:
    return urlsplit(url).username or ""


def login_error(url: str, timeout: int) -> psycopg.Error | None:
    try:
        psycopg.connect(url, connect_timeout=timeout, autocommit=True).close()
    except psycopg.Error as exc:
        return exc
    return None


def is_auth_refusal(exc: psycopg.Error) -> bool:
    """Password refused (28P01) or no such login (28000): the server's wording is the same on CockroachDB
    and PostgreSQL ("password authentication failed for user ..."); libpq often reports it without a
    SQLSTATE, so the words count too (as in sample_app/db.py is_auth_refusal)."""
    text = str(exc)
    return getattr(exc, "sqlstate", None) in ("28P01", "28000") or "password authentication failed" in text


class Rotator:
    def __init__(self, crdb, store, app, log: Callable[[str], None], *, switch_timeout_seconds: float = 180.0,
                 poll_seconds: float = 1.0, confirmations: int = 5, login_timeout_seconds: int = 10):
        self.crdb, self.store, self.app, self.log = crdb, store, app, log
        self.switch_timeout_seconds, self.poll_seconds = switch_timeout_seconds, poll_seconds
        self.confirmations, self.login_timeout_seconds = confirmations, login_timeout_seconds

    def rotate(self, path: AppPath) -> PathRotation:
        if self.crdb.insecure:
            raise RotationError("the cluster is insecure: it refuses passwords (28P01), so there is nothing to "
                                "rotate; rotate credentials on a secure cluster only")
        published = self.store.read(path)
        published_user = url_user(published)
        if published_user not in path.users:
            raise RotationError(
                f"{self.store.describe()}: the {path.name} URL logs in as {published_user!r}, not as one of the "
                f"{path.name} path's rotation users {path.users}. Point it at {path.users[0]} (the phase created "
                f"it with ${path.initial_password_env}), let the app take it, then re-execute")
        in_use = self._app_user(path)
        if in_use == published_user:
            new_url, resumed, old_url = self._publish_other(path, published), False, published
        else:
            new_url, resumed, old_url = self._resume(path, published, in_use), True, None
        new = url_user(new_url)
        started = time.monotonic()
        self._wait_until_app_uses(path, new, in_use)
        switch = time.monotonic() - started
        retired = path.other(new)
        self._retire(retired)
        # The retired URL itself when this run published over it; after a resume that URL is gone, and any
        # password must be refused (PASSWORD NULL), so a wrong one proves it as well.
        probe = old_url or with_credentials(new_url, retired, secrets.token_urlsafe(16))
        refused, refusal = self._check_refused(probe)
        return PathRotation(path.name, new, retired, resumed, round(switch, 2), refused, refusal,
                            "the retired URL" if old_url else "a wrong password (an earlier run published)")

    # --- steps --------------------------------------------------------------------------------------------

    def _publish_other(self, path: AppPath, published: str) -> str:
        new = path.other(url_user(published))
        url = self._new_credential(new, published)
        self.store.publish(path, url, expected_current=published)
        self.log(f"{path.name}: published {new}'s new credential in {self.store.describe()}")
        return url

    def _resume(self, path: AppPath, published: str, in_use: str) -> str:
        """An earlier run published a user the app does not use yet: wait for it again, after proving the
        published credential still logs in (else it gets a new one: the app does not use that user)."""
        user = url_user(published)
        self.log(f"{path.name}: {user} is published while the app still uses {in_use}: resuming the wait")
        if login_error(published, self.login_timeout_seconds) is None:
            return published
        url = self._new_credential(user, published)
        self.store.publish(path, url, expected_current=published)
        self.log(f"{path.name}: the published credential of {user} did not log in: published a new one")
        return url

    def _new_credential(self, user: str, template_url: str) -> str:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        self.crdb.execute(psql.SQL("ALTER USER {} WITH PASSWORD {}").format(
            psql.Identifier(user), psql.Placeholder("pw")), {"pw": password})
        url = with_credentials(template_url, user, password)
        if (exc := login_error(url, self.login_timeout_seconds)) is not None:
            raise RotationError(
                f"{user}'s new password was set but logging in with it failed ({_first_line(exc)}); nothing was "
                "published and the app is untouched. Check that the user has LOGIN and the URL's host/TLS "
                "settings, then re-execute")
        return url

    def _app_user(self, path: AppPath) -> str:
        readiness = self.app.readiness()
        detail = readiness.detail if isinstance(readiness.detail, dict) else {}
        user = (detail.get("db_users") or {}).get(path.name)
        if not user:
            raise RotationError(
                f"the sample app does not say which user its {path.name} path uses (/readyz answered "
                f"{readiness.status_code}: {str(readiness.detail)[:300]}); nothing was changed. The app must run "
                "a version that reports db_users, with its URLs mounted as files (APP_DB_*_URL_FILE)")
        return user

    def _wait_until_app_uses(self, path: AppPath, new: str, was: str) -> None:
        deadline = time.monotonic() + self.switch_timeout_seconds
        seen, in_a_row = "", 0
        while in_a_row < self.confirmations:
            if time.monotonic() > deadline:
                raise RotationError(
                    f"the app did not move its {path.name} path to {new} within {self.switch_timeout_seconds:g}s "
                    f"(last /readyz: {seen}). Nothing was changed on {was}, which the app still uses; {new}'s "
                    f"credential stays published in {self.store.describe()} and valid. Check that the app pods "
                    f"mount the Secret as files ({path.url_variable}_FILE) and what their logs say, then "
                    "re-execute: the run resumes waiting")
            readiness = self.app.readiness()
            detail = readiness.detail if isinstance(readiness.detail, dict) else {}
            cred = (detail.get("credentials") or {}).get(path.name) or {}
            user = (detail.get("db_users") or {}).get(path.name)
            switch = cred.get("last_switch") or {}
            draining = switch.get("to") == new and switch.get("drained_seconds") is None
            seen = f"user {user}, draining {draining}, problem {cred.get('problem') or 'none'}"
            in_a_row = in_a_row + 1 if user == new and not draining else 0
            if in_a_row < self.confirmations:
                time.sleep(self.poll_seconds)
        self.log(f"{path.name}: the app runs on {new} ({self.confirmations} answers in a row), old pool drained")

    def _retire(self, user: str) -> None:
        # PASSWORD NULL: no password logs in any more (CockroachDB and PostgreSQL alike); the user keeps LOGIN
        # and its membership, so the next rotation only sets a new password.
        self.crdb.execute(psql.SQL("ALTER USER {} WITH PASSWORD NULL").format(psql.Identifier(user)))
        self.log(f"retired {user}: its password is NULL")

    def _check_refused(self, url: str) -> tuple[bool, str]:
        exc = login_error(url, self.login_timeout_seconds)
        if exc is None:
            return False, "the login succeeded"
        return is_auth_refusal(exc), _first_line(exc)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]
