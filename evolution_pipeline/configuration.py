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
from .resources.grafana import TOKEN_VARIABLE, GrafanaResource
from .resources.prometheus import PrometheusResource
from .resources.sample_app import SampleAppResource
from .resources.sql import CrdbSqlResource

# Backup destinations: nodelocal://1/... holds a restorable full-cluster backup, but on node 1's own disk, so
# it is DEMO-GRADE (lost with node 1, and every node must reach it to restore). For real use set
# CRDB_BACKUP_URI to s3://, gs:// or external:// (an external connection). userfile:// is no default: the
# docs restore only database- and table-level backups from it.
DEFAULTS = {
    LIVE: {"CRDB_NAMESPACE": "crdb", "CRDB_CLUSTER_NAME": "cockroachdb",
           "SAMPLE_APP_URL": "http://127.0.0.1:8000", "CRDB_BACKUP_URI": "nodelocal://1/crdb-evolution-backups"},
    REHEARSAL: {"CRDB_NAMESPACE": "crdb-rehearsal", "CRDB_CLUSTER_NAME": "cockroachdb",
                "SAMPLE_APP_URL": "http://127.0.0.1:8001",
                "CRDB_BACKUP_URI": "nodelocal://1/crdb-evolution-rehearsal-backups"},
}
# The `cluster` label the scrape configs give each environment's targets, per backend: the operator's
# Prometheus config (k8s/observability) and the local backend's file_sd targets (resources/local).
OPERATOR_CLUSTER_LABELS = {LIVE: "crdb-live", REHEARSAL: "crdb-rehearsal"}


def setting(env: Environment, name: str, default: str | None = None) -> str | None:
    """LIVE reads NAME, REHEARSAL reads REHEARSAL_NAME; both fall back to the documented default."""
    key = name if env == LIVE else f"REHEARSAL_{name}"
    return os.environ.get(key) or DEFAULTS[env].get(name, default)


def run_setting(env: Environment, name: str, default: str = "") -> str:
    """A setting that may change between runs (a URL, a token): dg.EnvVar when the variable is set, so
    Dagster resolves it as each run starts (a new Secret value reaches the next run without reloading the code
    location) and the UI shows the variable's name, never its value; the documented default when it is not.
    Unset at load means unset for the runs too (an EnvVar Dagster cannot resolve fails the run at start)."""
    key = name if env == LIVE else f"REHEARSAL_{name}"
    return dg.EnvVar(key) if os.environ.get(key) else DEFAULTS[env].get(name, default)


class ConfigurationError(ValueError):
    """A setting that cannot work; the message names the variable (the plan command prints it, exit 2)."""


def _float(env: Environment, name: str, default: float) -> float:
    raw = setting(env, name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):  # float() also takes "nan", "inf" and "-5"
        key = name if env == LIVE else f"REHEARSAL_{name}"
        raise ConfigurationError(f"{key} must be a finite number >= 0, got {raw[:40]!r}")
    return value


BACKENDS = ("operator", "local")


def backend() -> str:
    name = os.environ.get("EVOLUTION_CLUSTER_BACKEND", "operator").lower()
    if name not in BACKENDS:
        raise ConfigurationError(f"EVOLUTION_CLUSTER_BACKEND={name[:40]!r}: use 'operator' or 'local'")
    return name


def cluster_kinds(backend_name: str) -> set[str]:
    """The kind tags the UI shows on an asset that drives the cluster control (EVOLUTION_CLUSTER_BACKEND):
    Kubernetes only with the operator backend; the local backend runs `cockroach` processes."""
    return {"cockroachdb", "kubernetes"} if backend_name == "operator" else {"cockroachdb"}


def cluster_label(env: Environment) -> str:
    """What the checks and Grafana select (cluster="..."): CRDB_CLUSTER_LABEL, else the label the
    backend's own scrape targets carry, so the two agree without anyone setting it."""
    if backend() == "local":
        from .resources.local import LIVE_DEFAULTS, REHEARSAL_DEFAULTS

        default = (LIVE_DEFAULTS if env == LIVE else REHEARSAL_DEFAULTS)["CRDB_CLUSTER_LABEL"]
    else:
        default = OPERATOR_CLUSTER_LABELS[env]
    return setting(env, "CRDB_CLUSTER_LABEL", default)


def cluster_resource(env: Environment) -> ClusterControlResource:
    backend_name = backend()
    common = {"environment": env.name,
              "ready_timeout_seconds": _float(env, "SCALE_TIMEOUT_SECONDS", 900.0),
              "poll_interval_seconds": _float(env, "SCALE_POLL_SECONDS", 5.0)}
    if backend_name == "operator":
        from .resources.operator import CrdbOperatorResource

        return CrdbOperatorResource(
            namespace=setting(env, "CRDB_NAMESPACE"), cluster_name=setting(env, "CRDB_CLUSTER_NAME"),
            # Unset: in-cluster config inside Kubernetes, else $KUBECONFIG / ~/.kube/config.
            context=setting(env, "KUBE_CONTEXT", None),
            live_namespace=setting(LIVE, "CRDB_NAMESPACE"), live_cluster_name=setting(LIVE, "CRDB_CLUSTER_NAME"),
            **common,
        )
    if backend_name == "local":
        from .resources.local import LocalClusterResource

        return LocalClusterResource.from_environment(env, **common)
    raise ConfigurationError(f"EVOLUTION_CLUSTER_BACKEND={backend_name!r}: use 'operator' or 'local'")


def admin_url_var(env: Environment) -> str:
    return "CRDB_ADMIN_URL" if env == LIVE else "REHEARSAL_CRDB_ADMIN_URL"


def crdb_resource(env: Environment, url: str | None = None) -> CrdbSqlResource:
    return CrdbSqlResource(
        # Resolved when a run starts: the URL may carry credentials, so it never lives in code or config.
        # (An explicit url is for the plan command, which runs outside Dagster.)
        url=dg.EnvVar(admin_url_var(env)) if url is None else url,
        database=APP_DATABASE,
        backup_uri=setting(env, "CRDB_BACKUP_URI"),
        insecure=insecure_cluster(env),
        replication_timeout_seconds=_float(env, "REPLICATION_TIMEOUT_SECONDS", 900.0),
        replication_poll_seconds=_float(env, "REPLICATION_POLL_SECONDS", 5.0),
    )


def insecure_cluster(env: Environment) -> bool:
    """True only for the local backend started with LOCAL_CRDB_INSECURE (REHEARSAL_LOCAL_CRDB_INSECURE): an
    insecure cluster refuses passwords, so none are set. Every other cluster is secure and needs them."""
    if backend() != "local":
        return False
    from .resources.local import settings_from_env

    return settings_from_env(env.name)["insecure"]


def prometheus_resource(env: Environment) -> PrometheusResource:
    return PrometheusResource(
        url=run_setting(env, "PROMETHEUS_URL", "http://127.0.0.1:9090"),
        cluster_label=cluster_label(env),
        check_settle_seconds=_float(env, "CHECK_SETTLE_SECONDS", 60.0),
        app_error_budget=_float(env, "APP_ERROR_BUDGET", 0.01),
        app_latency_ratio=_float(env, "APP_LATENCY_RATIO", 2.0),
        app_latency_slack_seconds=_float(env, "APP_LATENCY_SLACK_SECONDS", 0.010),
    )


def grafana_resource(env: Environment) -> GrafanaResource:
    # The token is shared by both environments (one Grafana watches both clusters).
    token = dg.EnvVar(TOKEN_VARIABLE) if os.environ.get(TOKEN_VARIABLE) else ""
    return GrafanaResource(url=run_setting(env, "GRAFANA_URL"), api_url=run_setting(env, "GRAFANA_API_URL"),
                           api_token=token, cluster_label=cluster_label(env))


def sample_app_resource(env: Environment) -> SampleAppResource:
    return SampleAppResource(url=run_setting(env, "SAMPLE_APP_URL"))


BUILDERS = {"cluster": cluster_resource, "crdb": crdb_resource, "prometheus": prometheus_resource,
            "grafana": grafana_resource, "sample_app": sample_app_resource}


def resources_from_env() -> dict:
    return {env.resource_key(kind): BUILDERS[kind](env) for env in ENVIRONMENTS for kind in RESOURCE_KINDS}


def plan_resources(env: Environment) -> tuple[ClusterControlResource, CrdbSqlResource, str | None]:
    """The cluster and SQL resources of `env` for the plan command, outside Dagster, and why the cluster
    cannot be read (None when it can be tried): Dagster resolves the admin URL's EnvVar only when a run
    starts, so here it is read from the environment directly."""
    url = os.environ.get(admin_url_var(env), "")
    crdb = crdb_resource(env, url=url)
    return cluster_resource(env), crdb, None if url else f"{admin_url_var(env)} is not set"
