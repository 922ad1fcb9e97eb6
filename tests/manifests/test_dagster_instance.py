"""The Dagster Helm chart's instance config loads with the project's installed packages.

The chart writes one dagster.yaml into a ConfigMap that the webserver, the daemon and every run pod load
(dagster-io/dagster helm/dagster/templates/configmap-instance.yaml): run, event log and schedule storage are
always dagster_postgres classes, configured by helpers/instance/_postgresql.tpl (password from the env var
DAGSTER_PG_PASSWORD), and our values choose the K8sRunLauncher (helpers/instance/_run-launcher.tpl) and the
daemon's QueuedRunCoordinator. A run pod built from k8s/pipeline/Dockerfile without dagster-postgres dies
while loading the instance; here the same config is loaded against a real PostgreSQL and a run is recorded.
"""

from __future__ import annotations

import json
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
from tests.manifests import chart_instance
from tests.manifests.chart_instance import local_instance, values

PASSWORD = "install-generated-password"


@pytest.fixture(scope="module")
def dagster_db():
    root = Path(tempfile.mkdtemp(prefix="dagster-instance-pg-"))
    root.chmod(0o755)  # the server runs as another user
    server = LocalPostgres(root)
    pg = values()["postgresql"]
    user, db = pg["postgresqlUsername"], pg["postgresqlDatabase"]
    server.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'", dbname="postgres")
    server.execute(f"CREATE DATABASE {db} OWNER {user}", dbname="postgres")
    yield server
    server.close()
    shutil.rmtree(root, ignore_errors=True)


def write_kubeconfig(path: Path) -> Path:
    """A kubeconfig standing in for the pod's in-cluster credentials (the launcher is built, never called)."""
    path.write_text(
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
    return path


def test_the_charts_instance_config_loads_and_records_a_run(dagster_db, tmp_path, monkeypatch):
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(chart_instance.render(dagster_db.port, kubeconfig)))
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


# --- one evolution at a time on Kubernetes as locally ------------------------------------------------------


def test_the_chart_renders_the_same_run_concurrency_as_the_local_instance():
    """Pools (default limit 1, run granularity) and the crdb-evolution/environment tag limit: the same in
    the chart's instance as in dagster_home/dagster.yaml, and slots of cancelled runs come back alike."""
    local = local_instance()
    rendered = chart_instance.concurrency(values())
    assert rendered == local["concurrency"]
    assert rendered["pools"]["default_limit"] == 1
    assert {"key": "crdb-evolution/environment", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        rendered["runs"]["tag_concurrency_limits"]
    )
    monitoring = chart_instance.run_monitoring(values())
    local_free = local["run_monitoring"]["free_slots_after_run_end_seconds"]
    assert monitoring["free_slots_after_run_end_seconds"] == local_free


def test_the_chart_retries_crashed_runs_as_the_local_instance_does():
    """Crash-only run retries on Kubernetes as locally: an evicted run pod is retried up to twice (its state
    lives in the instance), and the jobs themselves say never to retry a failed step or check."""
    local = local_instance()["run_retries"]
    rendered = chart_instance.run_retries(values())
    assert rendered == {k: local[k] for k in ("enabled", "max_retries")}
    assert local["retry_on_asset_or_op_failure"] is False
    assert values()["dagsterDaemon"]["runRetries"]["retryOnAssetOrOpFailure"] is False
    from evolution_pipeline.definitions import defs  # @dg.definitions: built when called, as Dagster does

    for name in ("evolve", "rehearse"):
        tags = defs().resolve_job_def(name).tags
        assert tags["dagster/max_retries"] == str(local["max_retries"]), tags
        assert tags["dagster/retry_on_asset_or_op_failure"] == "false", tags


def test_dagster_reads_the_same_limits_from_both_instances(dagster_db, tmp_path, monkeypatch):
    """Dagster itself, loading each instance, sees equal pool and run-queue limits; the chart's run
    coordinator carries no limits of its own (dagster refuses both: instance/config.py
    conflicting_run_queue_fields)."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig")
    chart_home, local_home = tmp_path / "chart", tmp_path / "local"
    chart_home.mkdir()
    local_home.mkdir()
    rendered = chart_instance.render(dagster_db.port, kubeconfig)
    (chart_home / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    (local_home / "dagster.yaml").write_text(chart_instance.LOCAL_INSTANCE.read_text())
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", PASSWORD)
    for name in (
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
        "DAGSTER_K8S_PG_PASSWORD_SECRET",
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP",
    ):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAGSTER_HOME", str(chart_home))

    def limits(home: Path) -> tuple:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            config = instance.get_concurrency_config()
            queue = config.run_queue_config
            pools = config.pool_config
            return (
                queue.max_concurrent_runs,
                sorted(json.dumps(t, sort_keys=True) for t in queue.tag_concurrency_limits),
                pools.default_pool_limit,
                pools.pool_granularity,
            )

    chart, local = limits(chart_home), limits(local_home)
    assert chart == local
    assert chart[2] == 1

    # The check can fail: the same limit also on the run coordinator is refused by Dagster, not merged.
    doubled = chart_instance.render(dagster_db.port, kubeconfig)
    doubled["run_coordinator"]["config"]["tag_concurrency_limits"] = doubled["concurrency"]["runs"][
        "tag_concurrency_limits"
    ]
    (chart_home / "dagster.yaml").write_text(yaml.safe_dump(doubled))
    with pytest.raises(dg.DagsterInvalidConfigError, match="tag_concurrency_limits"):
        limits(chart_home)


def test_the_chart_turns_telemetry_off():
    """The image's user has home /nonexistent; telemetry would write there and under DAGSTER_HOME."""
    with tempfile.TemporaryDirectory() as tmp:
        rendered = chart_instance.render(5432, Path(tmp) / "kubeconfig")
    assert rendered["telemetry"] == {"enabled": False}
    chart_default = chart_instance.render(5432, Path("k"), {**values(), "telemetry": {}})
    assert chart_default["telemetry"] == {"enabled": True}
