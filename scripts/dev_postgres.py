"""An embedded PostgreSQL for `make dev` when no CockroachDB binary is installed.

The sample app speaks the PostgreSQL wire protocol and its bootstrap SQL is portable, so without a
cockroach binary the app still runs for real against PostgreSQL 16 from `pgserver`. This script starts
the server, creates the `app` database with sql/00-bootstrap.sql, the `app_writer` login role and an
`app_reader` login role with SELECT only, writes the app's two URLs to an env file and then holds the
server until it gets SIGTERM/SIGINT (pgserver stops it when this process exits).

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


def ensure_role(conn: psycopg.Connection, role: str, password: str) -> None:
    # PostgreSQL has no CREATE USER IF NOT EXISTS.
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
    )


def apply_bootstrap(app_uri: str) -> None:
    """sql/00-bootstrap.sql through the sample app's own helper (the same code path the app's tests use)."""
    from sample_app.schema import apply_bootstrap as bootstrap

    bootstrap(app_uri)


def grant(conn: psycopg.Connection) -> None:
    conn.execute("GRANT CONNECT ON DATABASE app TO app_writer, app_reader")
    conn.execute("GRANT USAGE ON SCHEMA public TO app_writer, app_reader")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_writer")
    conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_reader")
    # The reader must truly be read-only, whatever an earlier run granted.
    conn.execute("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM app_reader")


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
    with psycopg.connect(app_admin, autocommit=True) as conn:
        ensure_role(conn, "app_writer", writer_pw)
        ensure_role(conn, "app_reader", reader_pw)
    apply_bootstrap(app_admin)
    with psycopg.connect(app_admin, autocommit=True) as conn:
        grant(conn)
    urls = {
        "APP_DB_WRITER_URL": role_uri(app_admin, "app_writer", writer_pw),
        "APP_DB_READER_URL": role_uri(app_admin, "app_reader", reader_pw),
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
