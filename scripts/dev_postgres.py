"""An embedded PostgreSQL for `make dev` when no CockroachDB binary is installed.

The sample app speaks the PostgreSQL wire protocol and its bootstrap SQL is portable, so without a
cockroach binary the app still runs for real against PostgreSQL 16 from `pgserver`. This script starts
the server, creates the `app` database with sql/00-bootstrap.sql and the role model exactly as the pipeline's
phases do (groups app_fa/app_rw/app_ro, rotation users app_rw_01/02 and app_ro_01/02, the grants of
sql/05-... and sql/10-...), writes the app's two URLs (app_rw_01, app_ro_01) to an env file and then holds
the server until it gets SIGTERM/SIGINT (pgserver stops it when this process exits).

pgserver listens on a Unix socket only and trusts local connections (passwords are set but not checked),
which is fine for a laptop fallback; privileges (the reader's SELECT only) are enforced.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def apply_bootstrap(app_uri: str) -> None:
    """sql/00-bootstrap.sql through the sample app's own helper (the same code path the app's tests use)."""
    from sample_app.schema import apply_bootstrap as bootstrap

    bootstrap(app_uri)


def role_model(admin_uri: str, passwords: dict[str, str]) -> None:
    """The phases' groups, users and grants, through the pipeline's own code and SQL files."""
    # The SQL resource's methods without Dagster (resources/sql.py): `make dev` need not import it here.
    from evolution_pipeline.phases import PHASES, SQL_DIR, SQL_USERS
    from evolution_pipeline.resources.sql import CrdbSqlClient

    admin = CrdbSqlClient(url=admin_uri, database="app")
    for phase in PHASES:
        for group in phase.groups:
            admin.ensure_group(group)
        for user in phase.users:
            admin.ensure_login_user(user, passwords.get(SQL_USERS[user] or ""))
    for name in ("05-phase0-writer-user.sql", "10-phase1-reader-user.sql"):  # the portable phase files
        admin.run_script(SQL_DIR / name)


def harden(admin_app_uri: str) -> None:
    """Revoke from PUBLIC what the role model never needs on PostgreSQL (sample_app/schema.py POSTGRES_HARDENING):
    TEMP on the database, the large-object constructors."""
    from sample_app.schema import harden_postgres

    harden_postgres(admin_app_uri)


def role_uri(admin_app_uri: str, role: str, password: str) -> str:
    """postgresql://role:password@/app?host=<socket dir> (pgserver serves a Unix socket only)."""
    parts = urlsplit(admin_app_uri)
    host = parse_qs(parts.query).get("host", [""])[0]
    return f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}@/app?host={quote(host, safe='/')}"


def write_env(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for key, value in values.items():
            f.write(f"{key}='{value}'\n")  # values are URL-encoded: no quote can appear in them
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="PostgreSQL data folder (kept between runs)"
    )
    parser.add_argument(
        "--env-file", required=True, type=Path, help="where to write APP_DB_WRITER_URL/READER_URL"
    )
    args = parser.parse_args(argv)
    writer_pw, reader_pw = os.environ.get("APP_WRITER_PASSWORD"), os.environ.get("APP_READER_PASSWORD")
    if not writer_pw or not reader_pw:
        print(
            "dev_postgres: APP_WRITER_PASSWORD and APP_READER_PASSWORD must be set (make dev generates them)",
            file=sys.stderr,
        )
        return 2

    stopping = []
    # SIGTERM/SIGINT -> normal exit, so pgserver's atexit hook stops the server cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))

    import pgserver

    args.data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(args.data_dir, cleanup_mode="stop")
    ensure_database(server.get_uri("postgres"), "app")
    app_admin = server.get_uri("app")
    apply_bootstrap(app_admin)
    role_model(server.get_uri("postgres"), {"APP_WRITER_PASSWORD": writer_pw, "APP_READER_PASSWORD": reader_pw})
    harden(app_admin)
    urls = {
        "APP_DB_WRITER_URL": role_uri(app_admin, "app_rw_01", writer_pw),
        "APP_DB_READER_URL": role_uri(app_admin, "app_ro_01", reader_pw),
    }
    write_env(args.env_file, urls)
    for name, url in urls.items():
        print(
            f"dev_postgres: {name}={url.replace(quote(writer_pw, safe=''), '***').replace(quote(reader_pw, safe=''), '***')}",
            flush=True,
        )
    print(
        f"dev_postgres: embedded PostgreSQL (pgserver) ready in {args.data_dir}; Ctrl-C of make dev stops it",
        flush=True,
    )
    while not stopping:
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
