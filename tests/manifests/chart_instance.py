"""dagster.yaml as the Dagster Helm chart renders it for k8s/pipeline/dagster-values.yaml.

No helm binary runs in the suite, so the parts of the chart's instance ConfigMap our values reach are
ported here, each from its template in dagster-io/dagster helm/dagster/templates/:
- configmap-instance.yaml: run, event log and schedule storage are always dagster_postgres classes;
  `telemetry: enabled: <telemetry.enabled>`; run_monitoring from dagsterDaemon.runMonitoring (with
  free_slots_after_run_end_seconds); `concurrency` only when concurrency.enabled;
- helpers/instance/_postgresql.tpl: postgres_db (password from the env var DAGSTER_PG_PASSWORD, `scheme`
  only when postgresql.postgresqlScheme is set);
- helpers/instance/_concurrency.tpl: pools.default_limit/granularity, runs.max_concurrent_runs and
  tag_concurrency_limits (camelCase values -> snake_case keys);
- helpers/instance/_run-coordinator.tpl: the QueuedRunCoordinator gets max_concurrent_runs and
  tag_concurrency_limits only when concurrency is disabled or they are set explicitly; the chart's default
  dequeue settings (dequeueUseThreads true, dequeueNumWorkers 4, dagster PR 12737) are rendered;
- helpers/instance/_run-launcher.tpl: the K8sRunLauncher with jobNamespace, the env-sourced fields and
  envSecrets.
The compute log manager is the chart's default LocalComputeLogManager, which renders no config: logs land
under $DAGSTER_HOME/storage, like the local artifact storage (the image must make DAGSTER_HOME writable).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from evolution_pipeline.phases import REPO_ROOT

VALUES = REPO_ROOT / "k8s" / "pipeline" / "dagster-values.yaml"
LOCAL_INSTANCE = REPO_ROOT / "dagster_home" / "dagster.yaml"
CHART_DAGSTER_HOME = "/opt/dagster/dagster_home"  # values.yaml global.dagsterHome default


@cache
def _values_text() -> str:
    return VALUES.read_text()


def values() -> dict:
    return yaml.safe_load(_values_text())


def local_instance() -> dict:
    return yaml.safe_load(LOCAL_INSTANCE.read_text())


def dagster_home(v: dict | None = None) -> str:
    v = v or values()
    return (v.get("global") or {}).get("dagsterHome") or CHART_DAGSTER_HOME


def concurrency(v: dict) -> dict | None:
    """_concurrency.tpl (rendered only with concurrency.enabled, configmap-instance.yaml)."""
    block = v.get("concurrency") or {}
    if not block.get("enabled"):
        return None
    pools, runs = block.get("pools") or {}, block.get("runs") or {}
    out: dict = {}
    rendered_pools = {
        key: pools[name]
        for name, key in (
            ("defaultLimit", "default_limit"),
            ("granularity", "granularity"),
            ("opGranularityRunBuffer", "op_granularity_run_buffer"),
        )
        if pools.get(name) is not None
    }
    if rendered_pools:
        out["pools"] = rendered_pools
    rendered_runs: dict = {}
    if runs.get("maxConcurrentRuns") is not None:
        rendered_runs["max_concurrent_runs"] = runs["maxConcurrentRuns"]
    if runs.get("tagConcurrencyLimits"):
        rendered_runs["tag_concurrency_limits"] = [
            {"key": t["key"], **({"value": t["value"]} if t.get("value") else {}), "limit": t["limit"]}
            for t in runs["tagConcurrencyLimits"]
        ]
    if rendered_runs:
        out["runs"] = rendered_runs
    return out


def run_coordinator(v: dict) -> dict:
    """_run-coordinator.tpl for the QueuedRunCoordinator (the chart's default coordinator)."""
    qrc = (((v.get("dagsterDaemon") or {}).get("runCoordinator") or {}).get("config") or {}).get(
        "queuedRunCoordinator"
    ) or {}
    enabled = bool((v.get("concurrency") or {}).get("enabled"))
    config: dict = {}
    if not enabled or qrc.get("maxConcurrentRuns") is not None:
        config["max_concurrent_runs"] = (
            -1 if qrc.get("maxConcurrentRuns") is None else qrc["maxConcurrentRuns"]
        )
    if qrc.get("tagConcurrencyLimits"):
        config["tag_concurrency_limits"] = qrc["tagConcurrencyLimits"]
    config["dequeue_use_threads"] = qrc.get("dequeueUseThreads", True)
    config["dequeue_num_workers"] = qrc.get("dequeueNumWorkers", 4)
    return {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": config}


def run_monitoring(v: dict) -> dict:
    rm = (v.get("dagsterDaemon") or {}).get("runMonitoring") or {}
    return {
        "enabled": rm.get("enabled", True),
        "start_timeout_seconds": rm.get("startTimeoutSeconds", 300),
        "poll_interval_seconds": rm.get("pollIntervalSeconds", 120),
        "free_slots_after_run_end_seconds": rm.get("freeSlotsAfterRunEndSeconds", 0),
    }


def run_retries(v: dict) -> dict | None:
    """configmap-instance.yaml: `run_retries` only when dagsterDaemon.runRetries.enabled, with `enabled` and
    `max_retries` (when set). The stored template renders nothing for retryOnAssetOrOpFailure though the
    chart's schema (schema/charts/dagster/subschema/daemon.py, RunRetries) accepts it: where a chart does not
    render it, the instance default applies, so the evolve and rehearse jobs carry the
    dagster/retry_on_asset_or_op_failure=false tag themselves."""
    rr = (v.get("dagsterDaemon") or {}).get("runRetries") or {}
    if not rr.get("enabled"):
        return None
    return {"enabled": True, **({"max_retries": rr["maxRetries"]} if rr.get("maxRetries") else {})}


def render(pg_port: int, kubeconfig: Path, v: dict | None = None) -> dict:
    """The instance for these values, with PostgreSQL moved to 127.0.0.1:<pg_port> and a kubeconfig file
    standing in for the pod's in-cluster credentials."""
    v = v or values()
    pg = v.get("postgresql") or {}
    postgres = {
        "postgres_db": {
            "username": pg.get("postgresqlUsername", "test"),
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": "127.0.0.1",
            "db_name": pg.get("postgresqlDatabase", "test"),
            "port": pg_port,
            "params": {},
            **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
        }
    }
    launcher = v["runLauncher"]["config"]["k8sRunLauncher"]
    instance = {
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
                "job_namespace": launcher["jobNamespace"],
                "image_pull_policy": "Always",
                "service_account_name": v["global"]["serviceAccountName"],
                "dagster_home": {"env": "DAGSTER_HOME"},
                "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
                "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
                "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}],
                "env_secrets": [s["name"] for s in launcher.get("envSecrets", [])],
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
        "run_coordinator": run_coordinator(v),
        "run_monitoring": run_monitoring(v),
        # configmap-instance.yaml always renders it; the chart's default is enabled: true.
        "telemetry": {"enabled": (v.get("telemetry") or {}).get("enabled", True)},
    }
    if (rendered := concurrency(v)) is not None:
        instance["concurrency"] = rendered
    return instance
