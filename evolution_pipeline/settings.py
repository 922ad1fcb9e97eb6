"""Settings per environment, read from the environment (never from source), without Dagster.

EVOLUTION_CLUSTER_BACKEND selects the cluster control: `operator` (CrdbCluster v1beta1 through the
Kubernetes API, the default) or `local` (local `cockroach` processes, what `make dev` uses). Every live
setting has a REHEARSAL_ twin so the rehearsal environment is configured separately from the live one.

The fields of the cluster and SQL resources are worked out here once: configuration.py builds the Dagster
resources a run gets from them, and plan_resources the plain classes `python -m evolution_pipeline plan` reads
the cluster through (the same fields, the same methods). Dagster stays out of this module on purpose: importing
it costs ~2 CPU-seconds per plan (tests/plan/test_plan_imports.py keeps it out). configuration.py re-exports
every name defined here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .environments import LIVE, REHEARSAL, Environment
from .phases import APP_DATABASE

if TYPE_CHECKING:
    from .resources.local.backend import LocalClusterBackend
    from .resources.operator import CrdbOperatorBackend
    from .resources.sql import CrdbSqlClient

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


def cluster_fields(env: Environment) -> tuple[str, dict]:
    """The backend (EVOLUTION_CLUSTER_BACKEND) and the fields of `env`'s cluster control: the Dagster resource
    (configuration.cluster_resource) and the plan's plain class (plan_resources) are built from these."""
    backend_name = backend()
    common = {"environment": env.name,
              "ready_timeout_seconds": _float(env, "SCALE_TIMEOUT_SECONDS", 900.0),
              "poll_interval_seconds": _float(env, "SCALE_POLL_SECONDS", 5.0)}
    if backend_name == "operator":
        return backend_name, {
            "namespace": setting(env, "CRDB_NAMESPACE"), "cluster_name": setting(env, "CRDB_CLUSTER_NAME"),
            # Unset: in-cluster config inside Kubernetes, else $KUBECONFIG / ~/.kube/config.
            "context": setting(env, "KUBE_CONTEXT", None),
            "live_namespace": setting(LIVE, "CRDB_NAMESPACE"), "live_cluster_name": setting(LIVE, "CRDB_CLUSTER_NAME"),
            **common,
        }
    if backend_name == "local":
        from .resources.local import settings_from_env

        # What LocalClusterResource.from_environment(env, **common) takes: the local settings, then `common`.
        return backend_name, {"environment": env.name} | settings_from_env(env.name) | common
    raise ConfigurationError(f"EVOLUTION_CLUSTER_BACKEND={backend_name!r}: use 'operator' or 'local'")


def admin_url_var(env: Environment) -> str:
    return "CRDB_ADMIN_URL" if env == LIVE else "REHEARSAL_CRDB_ADMIN_URL"


def crdb_fields(env: Environment) -> dict:
    """The SQL resource's fields but its URL, from the environment (configuration.crdb_resource, plan_resources)."""
    return {
        "database": APP_DATABASE,
        "backup_uri": setting(env, "CRDB_BACKUP_URI"),
        "insecure": insecure_cluster(env),
        "replication_timeout_seconds": _float(env, "REPLICATION_TIMEOUT_SECONDS", 900.0),
        "replication_poll_seconds": _float(env, "REPLICATION_POLL_SECONDS", 5.0),
    }


def insecure_cluster(env: Environment) -> bool:
    """True only for the local backend started with LOCAL_CRDB_INSECURE (REHEARSAL_LOCAL_CRDB_INSECURE): an
    insecure cluster refuses passwords, so none are set. Every other cluster is secure and needs them."""
    if backend() != "local":
        return False
    from .resources.local import settings_from_env

    return settings_from_env(env.name)["insecure"]


def plan_resources(env: Environment) -> tuple[CrdbOperatorBackend | LocalClusterBackend, CrdbSqlClient, str | None]:
    """The cluster control and SQL access of `env` for the plan command, outside Dagster: the plain classes,
    with the fields configuration.py gives the run's resources. Also why the cluster cannot be read (None when
    it can be tried): Dagster resolves the admin URL's EnvVar only when a run starts, so here it is read from
    the environment directly."""
    from .resources.sql import CrdbSqlClient

    url = os.environ.get(admin_url_var(env), "")
    crdb = CrdbSqlClient(url=url, **crdb_fields(env))
    backend_name, fields = cluster_fields(env)
    if backend_name == "operator":
        from .resources.operator import CrdbOperatorBackend

        cluster = CrdbOperatorBackend(**fields)
    else:
        from .resources.local.backend import LocalClusterBackend

        cluster = LocalClusterBackend(**fields)
    return cluster, crdb, None if url else f"{admin_url_var(env)} is not set"
