"""The role model, the way a DBaaS runs it: three groups, two rotation users per service path.

Groups are roles without LOGIN and hold every privilege (sql/05-..., sql/10-...): app_fa (full access: DDL
and DML), app_rw (read-write: DML and sequences, no schema changes), app_ro (read-only: SELECT and current
sequence values, truly cannot write). Services log in as users that only inherit a group, and each path has
two of them, so one's password can change while the app runs on the other (rotate_credentials).

The ground floor, next to the evolution model that names these users and groups (the loader, the plan,
preflight and rotation all import it; it imports nothing of the project); apply_sql creates the roles
(CrdbSqlResource.ensure_group and ensure_login_user).
"""

from __future__ import annotations

from dataclasses import dataclass

# Group -> what it is for. CREATE ROLE makes a role without LOGIN on PostgreSQL and CockroachDB alike
# (cockroachdb/cockroach pkg/sql/create_role.go: CREATE ROLE defaults to NOLOGIN, CREATE USER to LOGIN).
GROUPS: dict[str, str] = {
    "app_fa": "full access: DDL and DML (schema changes; no service logs in with it today)",
    "app_rw": "read-write: SELECT/INSERT/UPDATE/DELETE and sequences; cannot change the schema",
    "app_ro": "read-only: SELECT and current sequence values; cannot write or create",
}


@dataclass(frozen=True)
class AppPath:
    """One of the app's database paths and the two rotation users that can serve it."""

    name: str  # "writer" | "reader": the app's pool and its APP_DB_<NAME>_URL[_FILE]
    group: str
    users: tuple[str, str]
    # The environment variable holding the path's initial password, given to its first user when the
    # pipeline creates it (a Kubernetes Secret key in the cluster). Named after the path, not the user: it is
    # the path's credential, and keeping the names every deploy tool already sets (make dev, make
    # kind-install, crdb-pipeline-env) needs no migration. The second user is created without a password:
    # its first one comes from rotate_credentials, which owns every password from then on.
    initial_password_env: str

    @property
    def url_variable(self) -> str:
        """The app's variable for this path's URL (APP_DB_<NAME>_URL; _FILE when mounted from a Secret)."""
        return f"APP_DB_{self.name.upper()}_URL"

    def other(self, user: str) -> str:
        if user not in self.users:
            raise ValueError(f"{user!r} is not a rotation user of the {self.name} path {self.users}")
        return self.users[1] if user == self.users[0] else self.users[0]


WRITER = AppPath("writer", "app_rw", ("app_rw_01", "app_rw_02"), "APP_WRITER_PASSWORD")
READER = AppPath("reader", "app_ro", ("app_ro_01", "app_ro_02"), "APP_READER_PASSWORD")
APP_PATHS: tuple[AppPath, ...] = (WRITER, READER)
PATHS_BY_NAME = {p.name: p for p in APP_PATHS}


def path_of_user(user: str) -> AppPath | None:
    return next((p for p in APP_PATHS if user in p.users), None)


def initial_password_env(user: str) -> str | None:
    """The variable with `user`'s initial password, or None for a standby user (created without one)."""
    path = path_of_user(user)
    return path.initial_password_env if path and user == path.users[0] else None

