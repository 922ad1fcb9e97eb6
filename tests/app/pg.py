"""A real PostgreSQL for the app tests and benchmarks: pgserver's binaries on 127.0.0.1.

pgserver alone listens on a Unix socket and trusts everyone. Here the cluster also listens on a
loopback TCP port with scram-sha-256 passwords (the app connects like it does to CockroachDB:
a URL with user and password), and the test keeps a trusted socket for the superuser. The `app`
database gets sql/00-bootstrap.sql for real, the role model's groups (app_fa, app_rw, app_ro) and its four
rotation users (app_rw_01/02 inherit app_rw, app_ro_01/02 inherit app_ro, SELECT only), so privileges are
enforced by the server, not by us.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pgserver
import psycopg
from pgserver._commands import pg_ctl

from evolution_pipeline.phases import SQL_DIR
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from evolution_pipeline.roles import APP_PATHS, GROUPS
from evolution_pipeline.sqlscript import load_script
from sample_app.schema import apply_bootstrap, harden_postgres
from tests.support.net import free_restartable_port

# The grants come from the pipeline's own phase files, so the app is tested with exactly the
# privileges phases 0 and 1 give its users on CockroachDB.
GRANT_FILES = (SQL_DIR / "05-phase0-writer-user.sql", SQL_DIR / "10-phase1-reader-user.sql")


# pgserver guards server creation and cleanup with one class-level fasteners.InterProcessLock, which is not
# safe across threads of one process ("Unable to release an unaquired lock" when the early bench thread and a
# test's fixture create servers at once): one thread at a time does either.
PGSERVER_LOCK = threading.Lock()


class LocalPostgres:
    def __init__(self, root: Path):
        self.pgdata = root / "pgdata"
        with PGSERVER_LOCK:
            self.server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        self.socket_dir = parse_qs(urlparse(self.server.get_uri()).query)["host"][0]
        self.port = free_restartable_port()  # tests stop and restart it (test_outage.py)
        # Every rotation user gets a password here (the pipeline gives the standby its first one only when
        # rotating): the tests log in as either user of a path.
        self.passwords = {user: secrets.token_hex(12) for path in APP_PATHS for user in path.users}
        hba = self.pgdata / "pg_hba.conf"
        rule = "host all all 127.0.0.1/32 scram-sha-256\n"
        if not hba.read_text().startswith(rule):
            hba.write_text(rule + hba.read_text())  # first match wins: passwords on TCP
        self._ctl("-m", "fast", "stop")
        self.start()
        self._create_database_and_roles()

    # --- lifecycle (the "database goes away and comes back" tests use these)
    def _ctl(self, *args: str) -> None:
        pg_ctl(["-w", *args], pgdata=self.pgdata, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        self._ctl(
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start"
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def close(self) -> None:
        # pgserver's cleanup stops the server only while the postmaster it started itself runs, and
        # __init__ replaced that one: ours could outlive its deleted data directory (until its next
        # lock-file check, up to a minute). Stop it here, then let pgserver delete the data directory.
        # pgserver logs a stop of a stopped server as an error: expected here, so hushed.
        pgserver_log = logging.getLogger("pgserver")
        level = pgserver_log.level
        pgserver_log.setLevel(logging.CRITICAL)
        try:
            try:
                self.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped
            with PGSERVER_LOCK:
                self.server.cleanup()
        finally:
            pgserver_log.setLevel(level)

    # --- connection strings
    def admin_conninfo(self, dbname: str = "app") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def url(self, user: str) -> str:
        return f"postgresql://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/app"

    def execute(self, sql: str, params=None, dbname: str = "app") -> list[tuple]:
        with psycopg.connect(self.admin_conninfo(dbname), autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def _create_database_and_roles(self) -> None:
        if not self.execute("SELECT 1 FROM pg_database WHERE datname = 'app'", dbname="postgres"):
            self.execute("CREATE DATABASE app", dbname="postgres")
        self._set_roles()
        apply_bootstrap(self.admin_conninfo())
        admin = CrdbSqlResource(url=self.admin_conninfo("postgres"), database="app")
        for path in GRANT_FILES:
            admin.run_script(path)
        harden_postgres(self.admin_conninfo())  # as scripts/dev_postgres.py does for make dev
        self.execute("ANALYZE search_terms")  # fresh statistics, as autovacuum would give later

    def _set_roles(self) -> None:
        for group in GROUPS:  # roles without LOGIN, as the pipeline creates them
            if not self.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,), dbname="postgres"):
                self.execute(f"CREATE ROLE {group}", dbname="postgres")
        for user, password in self.passwords.items():
            exists = self.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,), dbname="postgres")
            verb = "ALTER" if exists else "CREATE"
            # Identifiers are fixed names, the password is bound server-side via format().
            self.execute(f"{verb} ROLE {user} LOGIN PASSWORD '{password}'", dbname="postgres")

    def restore_access(self) -> None:
        """Undo what a test did to the app's users: their passwords and exactly the phase files' privileges.

        Idempotent. A table-level REVOKE also drops that privilege's column-level grants, so revoking
        everything and re-running the grant files leaves no leftover of a test's GRANT/REVOKE.
        """
        self._set_roles()
        # One transaction: a request running meanwhile sees the old privileges or the restored ones.
        with psycopg.connect(self.admin_conninfo()) as conn:
            roles = ", ".join([*GROUPS, *self.passwords])
            conn.execute(f"REVOKE ALL ON TABLE login_events, search_terms FROM {roles}")
            conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {roles}")
            for path in GRANT_FILES:
                for statement in load_script(path):
                    conn.execute(statement)
