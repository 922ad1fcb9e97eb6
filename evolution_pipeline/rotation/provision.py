"""Creating the role model's groups and login users, idempotently, before a phase's SQL file runs (apply_sql).

PostgreSQL has no CREATE ROLE IF NOT EXISTS (CockroachDB has, cockroachdb/cockroach pkg/sql/create_role.go),
so a catalog probe (pg_roles, the same on both) keeps it idempotent and portable.
"""

from __future__ import annotations

from psycopg import errors
from psycopg import sql as psql

from ..resources.sql import SqlError
from .roles import GROUPS


def ensure_group(crdb, group: str) -> bool:
    """Create the group (a role without LOGIN) if missing. True when it created it."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; the role model has {', '.join(GROUPS)}")
    if crdb.role_exists(group):
        return False
    try:
        crdb.execute(psql.SQL("CREATE ROLE {}").format(psql.Identifier(group)))
    except SqlError as exc:  # 42710: an earlier attempt's reply was lost (retried), or a concurrent run
        if not isinstance(exc.__cause__, errors.DuplicateObject):
            raise
    return True


def ensure_rotation_user(crdb, user: str, password: str | None) -> bool:
    """Create the login user if missing, with its initial password in the same statement. True if created.

    An existing user is left alone on purpose: after creation its password belongs to rotate_credentials,
    and re-running a phase must never set a password back (that would lock the app out of the user it now
    runs on, or revive a retired credential). One statement, so no user exists half-made without its
    password. No password at all on an insecure cluster (CockroachDB refuses it there: 28P01) or for the
    standby user; on PostgreSQL and CockroachDB a user without a password cannot log in with one.
    """
    if crdb.role_exists(user):
        return False
    statement = psql.SQL("CREATE USER {}").format(psql.Identifier(user))
    params = None
    if password and not crdb.insecure:
        statement = psql.SQL("CREATE USER {} WITH PASSWORD {}").format(psql.Identifier(user), psql.Placeholder("pw"))
        params = {"pw": password}
    try:
        crdb.execute(statement, params)
    except SqlError as exc:
        if not isinstance(exc.__cause__, errors.DuplicateObject):
            raise
    return True
