"""Resources per environment, configured from the environment (never from source).

EVOLUTION_CLUSTER_BACKEND selects the cluster control: `operator` (CrdbCluster v1beta1 through the
Kubernetes API, the default) or `local` (local `cockroach` processes, what `make dev` uses). Every live
setting has a REHEARSAL_ twin so the rehearsal environment is configured separately from the live one.
"""

import os

import dagster as dg

from .environments import ENVIRONMENTS, LIVE, REHEARSAL, RESOURCE_KINDS, Environment
from .phases import APP_DATABASE
from .resources.cluster import ClusterControlResource
from .resources.grafana import GrafanaResource
from .resources.prometheus import PrometheusResource
from .resources.sample_app import SampleAppResource
from .resources.sql import CrdbSqlResource

DEFAULTS = {
    LIVE: {"CRDB_NAMESPACE": "crdb", "CRDB_CLUSTER_NAME": "cockroachdb", "CRDB_CLUSTER_LABEL": "crdb-live",
           "SAMPLE_APP_URL": "http://127.0.0.1:8000", "LOCAL_CRDB_DATA_DIR": ".data/local",
           "CRDB_BACKUP_URI": "userfile:///crdb-evolution-backups"},
    REHEARSAL: {"CRDB_NAMESPACE": "crdb-rehearsal", "CRDB_CLUSTER_NAME": "cockroachdb",
                "CRDB_CLUSTER_LABEL": "crdb-rehearsal", "SAMPLE_APP_URL": "http://127.0.0.1:8001",
                "LOCAL_CRDB_DATA_DIR": ".data/rehearsal",
                "CRDB_BACKUP_URI": "userfile:///crdb-evolution-rehearsal-backups"},
}


def setting(env: Environment, name: str, default: str | None = None) -> str | None:
    """LIVE reads NAME, REHEARSAL reads REHEARSAL_NAME; both fall back to the documented default."""
    key = name if env == LIVE else f"REHEARSAL_{name}"
    return os.environ.get(key) or DEFAULTS[env].get(name, default)


def _float(env: Environment, name: str, default: float) -> float:
    return float(setting(env, name, str(default)))


def cluster_resource(env: Environment) -> ClusterControlResource:
    backend = os.environ.get("EVOLUTION_CLUSTER_BACKEND", "operator").lower()
    common = {"environment": env.name,
              "ready_timeout_seconds": _float(env, "SCALE_TIMEOUT_SECONDS", 900.0),
              "poll_interval_seconds": _float(env, "SCALE_POLL_SECONDS", 5.0)}
    if backend == "operator":
        from .resources.operator import CrdbOperatorResource

        return CrdbOperatorResource(
            namespace=setting(env, "CRDB_NAMESPACE"), cluster_name=setting(env, "CRDB_CLUSTER_NAME"),
            # Unset: in-cluster config inside Kubernetes, else $KUBECONFIG / ~/.kube/config.
            context=setting(env, "KUBE_CONTEXT", None),
            live_namespace=setting(LIVE, "CRDB_NAMESPACE"), live_cluster_name=setting(LIVE, "CRDB_CLUSTER_NAME"),
            **common,
        )
    if backend == "local":
        from .resources.local import LocalClusterResource

        return LocalClusterResource.from_environment(env, **common)
    raise ValueError(f"EVOLUTION_CLUSTER_BACKEND={backend!r}: use 'operator' or 'local'")


def crdb_resource(env: Environment) -> CrdbSqlResource:
    url_var = "CRDB_ADMIN_URL" if env == LIVE else "REHEARSAL_CRDB_ADMIN_URL"
    return CrdbSqlResource(
        # Resolved when a run starts: the URL may carry credentials, so it never lives in code or config.
        url=dg.EnvVar(url_var),
        database=APP_DATABASE,
        backup_uri=setting(env, "CRDB_BACKUP_URI"),
        replication_timeout_seconds=_float(env, "REPLICATION_TIMEOUT_SECONDS", 900.0),
        replication_poll_seconds=_float(env, "REPLICATION_POLL_SECONDS", 5.0),
    )


def prometheus_resource(env: Environment) -> PrometheusResource:
    return PrometheusResource(
        url=setting(env, "PROMETHEUS_URL", "http://127.0.0.1:9090"),
        cluster_label=setting(env, "CRDB_CLUSTER_LABEL"),
        check_settle_seconds=_float(env, "CHECK_SETTLE_SECONDS", 60.0),
        app_error_budget=_float(env, "APP_ERROR_BUDGET", 0.01),
    )


def grafana_resource(env: Environment) -> GrafanaResource:
    return GrafanaResource(url=setting(env, "GRAFANA_URL", ""), cluster_label=setting(env, "CRDB_CLUSTER_LABEL"))


def sample_app_resource(env: Environment) -> SampleAppResource:
    return SampleAppResource(url=setting(env, "SAMPLE_APP_URL"))


BUILDERS = {"cluster": cluster_resource, "crdb": crdb_resource, "prometheus": prometheus_resource,
            "grafana": grafana_resource, "sample_app": sample_app_resource}


def resources_from_env() -> dict:
    return {env.resource_key(kind): BUILDERS[kind](env) for env in ENVIRONMENTS for kind in RESOURCE_KINDS}
