"""The Dagster Helm chart's instance config loads with the project's installed packages.

The chart writes one dagster.yaml into a ConfigMap that the webserver, the daemon and every run pod load
(dagster-io/dagster helm/dagster/templates/configmap-instance.yaml): run, event log and schedule storage are
always dagster_postgres classes, configured by helpers/instance/_postgresql.tpl (password from the env var
DAGSTER_PG_PASSWORD), and our values choose the K8sRunLauncher (helpers/instance/_run-launcher.tpl) and the
daemon's QueuedRunCoordinator. A run pod built from k8s/pipeline/Dockerfile without dagster-postgres dies
while loading the instance; here the same config is loaded against a real PostgreSQL and a run is recorded.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from evolution_pipeline.phases import REPO_ROOT
from tests.app.pg import LocalPostgres

PASSWORD = "chart-generated-password"


@pytest.fixture(scope="module")
def dagster_db():
    root = Path(tempfile.mkdtemp(prefix="dagster-instance-pg-"))
    root.chmod(0o755)  # the server runs as another user
    server = LocalPostgres(root)
    server.execute(f"CREATE ROLE dagster LOGIN PASSWORD '{PASSWORD}'", dbname="postgres")
    server.execute("CREATE DATABASE dagster OWNER dagster", dbname="postgres")
    yield server
    server.close()
    shutil.rmtree(root, ignore_errors=True)


def values() -> dict:
    return yaml.safe_load((REPO_ROOT / "k8s" / "pipeline" / "dagster-values.yaml").read_text())


def chart_instance(pg: LocalPostgres, kubeconfig: Path) -> dict:
    """dagster.yaml as the chart renders it for k8s/pipeline/dagster-values.yaml (PostgreSQL moved here)."""
    postgres = {
        "postgres_db": {
            "username": "dagster",
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": "127.0.0.1",
            "db_name": "dagster",
            "port": pg.port,
            "params": {},
            # Rendered only when the values set postgresqlScheme (_postgresql.tpl); ours do: see there why.
            **({"scheme": scheme} if (scheme := values()["postgresql"].get("postgresqlScheme")) else {}),
        }
    }
    return {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": postgres,
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                # In the cluster: load_incluster_config true. Here a kubeconfig stands in for the pod's token.
                "load_incluster_config": False,
                "kubeconfig_file": str(kubeconfig),
                "job_namespace": "crdb",
                "image_pull_policy": "Always",
                "service_account_name": "crdb-pipeline",
                "dagster_home": {"env": "DAGSTER_HOME"},
                "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
                "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
                "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}],
                "env_secrets": ["crdb-pipeline-env"],
            },
        },
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": postgres,
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": postgres,
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {},
        },
        "run_monitoring": {"enabled": True, "start_timeout_seconds": 300, "poll_interval_seconds": 120},
        "telemetry": {"enabled": False},
    }


def test_the_charts_instance_config_loads_and_records_a_run(dagster_db, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(chart_instance(dagster_db, kubeconfig)))
    for name, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_PASSWORD": PASSWORD,
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "dagster-pipeline-env",
    }.items():
        monkeypatch.setenv(name, value)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_launcher).__name__ == "K8sRunLauncher"

        @dg.asset
        def probe() -> int:
            return 1

        result = dg.materialize([probe], instance=instance)
        assert result.success
        assert len(instance.get_runs()) == 1
    # The run really went to PostgreSQL, not to a local SQLite file.
    assert dagster_db.execute("SELECT count(*) FROM runs", dbname="dagster") == [(1,)]
    assert not list(home.rglob("*.db"))


def test_dagster_postgres_is_a_dependency_on_the_dagster_release_line():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    by_name = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0]: d for d in deps}
    assert "dagster-postgres" in by_name, "the chart's run pods load dagster_postgres storage"
    # Integration libraries are versioned 0.<x> alongside dagster 1.<x>: same bounds as dagster-k8s.
    assert by_name["dagster-postgres"].split("dagster-postgres")[1] == by_name["dagster-k8s"].split(
        "dagster-k8s"
    )[1]
