"""The Dagster face of CockroachDB SQL: CrdbSqlResource, the SQL door the ops get.

What it does (connections, retries, the statements) is CrdbSqlMethods' in sql.py, free of Dagster; this module
only declares the fields Dagster configures. Import it from here: sql.py never imports Dagster.
"""

from __future__ import annotations

import dagster as dg

from .sql import CrdbSqlMethods


class CrdbSqlResource(CrdbSqlMethods, dg.ConfigurableResource):
    """Admin SQL access to the cluster (root or an admin user, over TLS on real clusters).

    `url` is a libpq URL such as
    postgresql://root@crdb-writer.crdb:26257/defaultdb?sslmode=verify-full&sslrootcert=...&sslcert=...&sslkey=...
    and comes from the environment (CRDB_ADMIN_URL), never from source. The methods are CrdbSqlMethods'; the
    fields and defaults are CrdbSqlClient's too (tests/plan/test_plan_imports.py holds them together).
    """

    url: str
    database: str = "app"
    connect_timeout_seconds: int = 10
    max_attempts: int = 5
    retry_base_seconds: float = 0.2
    # Demo-grade default (node 1's disk, see configuration.DEFAULTS); s3://, gs:// or external:// for real use.
    backup_uri: str = "nodelocal://1/crdb-evolution-backups"
    # An insecure cluster (cockroach start --insecure, the local backend's opt-in) refuses passwords: 28P01
    # "setting or updating a password is not supported in insecure mode" (cockroachdb/cockroach
    # pkg/sql/alter_role.go, pkg/sql/create_role.go). Users are then created without one.
    insecure: bool = False
    # BACKUP ... AS OF SYSTEM TIME '-<n>s': a consistent snapshot slightly in the past, which keeps the backup
    # from contending with live writes (the CockroachDB docs' recommendation, "Take Full and Incremental
    # Backups"); it holds only what existed n seconds before the statement.
    backup_as_of_seconds: int = 10
    replication_timeout_seconds: float = 900.0
    replication_poll_seconds: float = 5.0
