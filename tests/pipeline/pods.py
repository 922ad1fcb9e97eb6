"""Dagster runs as Kubernetes runs them: every run its own pod, sharing only the instance's database.

The Dagster Helm chart deploys run and event storage on PostgreSQL (dagster-postgres) and the K8sRunLauncher
starts each run as a new pod whose DAGSTER_HOME (local artifact storage, compute logs) is its own and goes away
with it. Here: one real PostgreSQL (pgserver) holds a fresh database per test, and each "pod" is a
DagsterInstance on that database with its own temporary directory for everything else, so a run can only
see what an earlier run left in the instance's database, exactly what a pod can see.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pgserver

from tests.app.pg import PGSERVER_LOCK

# dagster-postgres builds `<scheme>://...` (dagster_postgres/utils.py get_conn_string, scheme defaults to
# "postgresql"; the chart's postgresql.postgresqlScheme sets it). SQLAlchemy 2.1 maps a bare "postgresql" to
# psycopg 3 when it is installed (this project needs it), and dagster-postgres' store_event then sends
# `NOTIFY run_events, $1`, which PostgreSQL refuses (server-side parameters exist only in SELECT/INSERT/...):
# every event write fails. dagster-postgres depends on psycopg2, so the instance names that driver, as
# k8s/pipeline/dagster-values.yaml does (postgresql.postgresqlScheme).
SCHEME = "postgresql+psycopg2"


class SharedInstanceDatabase:
    """A real PostgreSQL for Dagster's run, event and schedule storage; one database per `new_database()`."""

    def __init__(self):
        # Not under pytest's tmp dir: pytest keeps that 0700, and the server may run as another user.
        self.root = Path(tempfile.mkdtemp(prefix="dagster-instance-pg-"))
        self.root.chmod(0o755)
        with PGSERVER_LOCK:  # the worker's bench may be creating its servers in a thread right now
            self.server = pgserver.get_server(self.root / "pgdata", cleanup_mode="delete")

    def new_database(self) -> str:
        name = f"dagster_{secrets.token_hex(6)}"
        self.server.psql(f"CREATE DATABASE {name};")
        return self.server.get_uri(name).replace("postgresql://", f"{SCHEME}://", 1)

    def close(self) -> None:
        with PGSERVER_LOCK:
            self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def pod(postgres_url: str) -> Iterator[dg.DagsterInstance]:
    """One run's view of the instance: the shared database (as the chart configures it: `storage: postgres`)
    and a DAGSTER_HOME of its own, deleted when the pod goes."""
    overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    with (tempfile.TemporaryDirectory(prefix="dagster-pod-") as home,
          dg.instance_for_test(overrides=overrides, temp_dir=home) as instance):
        yield instance
