"""Resources per environment, configured from the environment (never from source).

EVOLUTION_CLUSTER_BACKEND selects the cluster control: `operator` (CrdbCluster v1beta1 through the
Kubernetes API, the default) or `local` (local `cockroach` processes, what `make dev` uses). Every live
setting has a REHEARSAL_ twin so the rehearsal environment is configured separately from the live one.

The settings themselves are read in settings.py, free of Dagster (the plan command builds its plain classes
there, from the same fields as the resources below); every name of settings.py is re-exported here.
"""

import os

import dagster as dg

from .environments import ENVIRONMENTS, LIVE, REHEARSAL, RESOURCE_KINDS, Environment  # noqa: F401
from .phases import APP_DATABASE  # noqa: F401
from .resources.cluster import ClusterControlResource
from .resources.grafana import TOKEN_VARIABLE, GrafanaResource
from .resources.prometheus import PrometheusResource
from .resources.sample_app import SampleAppResource
from .resources.sql_resource import CrdbSqlResource
from .settings import (  # noqa: F401  (the names every importer has used from here)
    BACKENDS,
    DEFAULTS,
    OPERATOR_CLUSTER_LABELS,
    ConfigurationError,
    _float,
    admin_url_var,
    backend,
    cluster_fields,
    cluster_kinds,
    cluster_label,
    crdb_fields,
    insecure_cluster,
    plan_resources,
    setting,
)


def run_setting(env: Environment, name: str, default: str = "") -> str:
    """A setting that may change between runs (a URL, a token): dg.EnvVar when the variable is set, so
    Dagster resolves it as each run starts (a new Secret value reaches the next run without reloading the code
    location) and the UI shows the variable's name, never its value; the documented default when it is not.
    Unset at load means unset for the runs too (an EnvVar Dagster cannot resolve fails the run at start)."""
    key = name if env == LIVE else f"REHEARSAL_{name}"
    return dg.EnvVar(key) if os.environ.get(key) else DEFAULTS[env].get(name, default)


def cluster_resource(env: Environment) -> ClusterControlResource:
    backend_name, fields = cluster_fields(env)
    if backend_name == "operator":
        from .resources.operator_resource import CrdbOperatorResource

        return CrdbOperatorResource(**fields)
    from .resources.local import LocalClusterResource

    # = LocalClusterResource.from_environment(env, **common): cluster_fields read the same variables.
    return LocalClusterResource(**fields)


def crdb_resource(env: Environment, url: str | None = None) -> CrdbSqlResource:
    return CrdbSqlResource(
        # Resolved when a run starts: the URL may carry credentials, so it never lives in code or config.
        # (An explicit url is for tests; the plan command builds a plain CrdbSqlClient in settings.py.)
        url=dg.EnvVar(admin_url_var(env)) if url is None else url,
        **crdb_fields(env),
    )


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
