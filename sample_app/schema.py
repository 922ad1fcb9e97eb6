"""Apply sql/00-bootstrap.sql (the portable schema + seed shared with the pipeline).

    python -m sample_app.schema postgresql://root@localhost:26257/app?sslmode=verify-full&...

The file is split the way the pipeline splits it (on ';' at line ends) and run statement by
statement in autocommit, so a CockroachDB schema change never shares a transaction with a write.
Every statement is idempotent: running it again changes nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import psycopg
import psycopg.sql

BOOTSTRAP_SQL = Path(__file__).resolve().parent.parent / "sql" / "00-bootstrap.sql"
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


def split_statements(text: str) -> list[str]:
    """Statements of a SQL file, split on ';' at line ends, comment-only chunks dropped."""
    statements = []
    for chunk in _STATEMENT_END.split(text):
        code = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
        if code:
            statements.append(code)
    return statements


def apply_bootstrap(conninfo: str, path: Path = BOOTSTRAP_SQL) -> int:
    """Run every statement of the bootstrap file; return how many ran."""
    statements = split_statements(path.read_text())
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
    return len(statements)


# PostgreSQL only (make dev's embedded database and the tests' PostgreSQL): what PUBLIC holds by default that
# the role model never needs. TEMP on the database (temporary tables are writes, also for the reader) and the
# large-object constructors (lo_from_bytea and friends create server-side objects any role may fill; the
# client-side lo_import calls lo_creat/lo_create too). Not revocable on PostgreSQL: a role changing its own
# password (ALTER ROLE docs: "ordinary roles can only change their own password"); see tests/FIDELITY.md
# for what CockroachDB does instead. These statements name PostgreSQL objects: never run them on CockroachDB.
POSTGRES_HARDENING = (
    "REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC",
    "REVOKE EXECUTE ON FUNCTION lo_from_bytea(oid, bytea), lo_create(oid), lo_creat(integer) FROM PUBLIC",
)


def harden_postgres(conninfo: str) -> int:
    """Run POSTGRES_HARDENING in the database `conninfo` names, as its owner or a superuser. Idempotent."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        database = psycopg.sql.Identifier(conn.info.dbname)
        for statement in POSTGRES_HARDENING:
            conn.execute(psycopg.sql.SQL(statement).format(database=database))
    return len(POSTGRES_HARDENING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_app.schema", description=__doc__.splitlines()[0])
    parser.add_argument(
        "url", help="connection URL of the `app` database, as a user allowed to create tables"
    )
    parser.add_argument("--file", type=Path, default=BOOTSTRAP_SQL)
    args = parser.parse_args(argv)
    try:
        count = apply_bootstrap(args.url, args.file)
    except (psycopg.Error, OSError) as exc:
        print(f"bootstrap failed: {exc}", file=sys.stderr)
        return 1
    print(f"applied {count} statements from {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
