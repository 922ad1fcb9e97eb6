"""rotate_credentials: the Dagster side of credential rotation, one job per environment, and its schedule.

The asset `app_credentials` (`rehearsal/app_credentials`) is the record of the last rotation: which rotation
user each path runs on, how long the app took to switch, that the retired credential is refused. Two blocking
checks judge it: the app kept serving during the rotation (its 5xx ratio from Prometheus over the rotation's
own window, pinned with `@ <end>`: the same query and budget as the phases' check, app_promql.py) and every
retired credential is refused. It runs in the environment's
pool, so it never overlaps an evolution of the same environment.
"""

import os
import time
from dataclasses import asdict, dataclass

import dagster as dg

from .. import app_promql
from ..configuration import backend, cluster_kinds, setting
from ..environments import ENVIRONMENTS, LIVE, OWNERS, REHEARSAL, Environment
from ..ops.common import permanent
from ..phases import REPO_ROOT
from ..resources.sql import SqlError
from ..roles import APP_PATHS, PATHS_BY_NAME
from .publish import CredentialStoreError, FileCredentialStore, KubernetesSecretStore
from .rotate import PathRotation, RotationError, Rotator

ASSET = "app_credentials"
RESOURCE_KIND = "credentials"
# Spelled out (not derived) so the docs' names can be found in the code. `evolve` and `rehearse` select by
# tag (environments.EVOLUTION_TAG, which these assets do not carry), so one group holds both environments'
# credentials, where people look for them.
JOB_NAMES = {LIVE.name: "rotate_credentials", REHEARSAL.name: "rehearsal_rotate_credentials"}
GROUP = "credentials"


class RotationConfig(dg.Config):
    paths: list[str] = ["writer", "reader"]
    # A Secret volume reaches the pods after the kubelet's sync period plus its cache TTL (about a minute
    # by default, Kubernetes docs "Secrets: mounted Secrets are updated automatically"): 3 minutes is the
    # default budget before the job gives up (touching nothing on the user still in use).
    switch_timeout_seconds: float = 180.0
    poll_seconds: float = 1.0
    # /readyz answers in a row that show the new user: the Service spreads them over the app's replicas.
    confirmations: int = 5


@dataclass(frozen=True)
class RotationRecord:
    environment: str
    started_at: float
    finished_at: float
    paths: tuple[PathRotation, ...]
    skipped: tuple[str, ...] = ()


def build_rotation_asset(env: Environment) -> dg.AssetsDefinition:
    crdb_key, app_key, store_key = (env.resource_key(k) for k in ("crdb", "sample_app", RESOURCE_KIND))

    @dg.asset(
        key=env.asset_key(ASSET),
        group_name=GROUP,
        required_resource_keys={crdb_key, app_key, store_key},
        pool=env.pool,
        kinds=cluster_kinds(backend()),  # the credential store: a Kubernetes Secret with the operator backend
        owners=list(OWNERS),
        description="Rotate the app's database credentials: per path, the rotation user not in use gets a new "
                    "password, is published, the app moves to it with no failed request, then the other "
                    "user's password is invalidated. Never touches the user the app still runs on.",
    )
    def _rotate(context: dg.AssetExecutionContext, config: RotationConfig) -> dg.Output[RotationRecord]:
        crdb, app, store = (getattr(context.resources, k) for k in (crdb_key, app_key, store_key))
        rotator = Rotator(crdb, store, app, context.log.info, switch_timeout_seconds=config.switch_timeout_seconds,
                          poll_seconds=config.poll_seconds, confirmations=config.confirmations)
        started, done, skipped = time.time(), [], []
        for path in _paths(config.paths):
            if not all(crdb.role_exists(u) for u in path.users):
                skipped.append(f"{path.name}: {'/'.join(path.users)} do not exist yet (a later phase creates them)")
                context.log.warning(skipped[-1])
                continue
            try:
                done.append(rotator.rotate(path))
            except (RotationError, CredentialStoreError, SqlError) as exc:
                raise permanent(f"{path.name} path: {exc}", rotated_before=[p.path for p in done]) from exc
        record = RotationRecord(env.name, started, time.time(), tuple(done), tuple(skipped))
        return dg.Output(record, metadata={
            "users": dg.MetadataValue.json({p.path: p.active for p in done}),
            "retired": dg.MetadataValue.json({p.path: p.retired for p in done}),
            "switch_seconds": dg.MetadataValue.json({p.path: p.switch_seconds for p in done}),
            "resumed": dg.MetadataValue.json({p.path: p.resumed for p in done}),
            "skipped": dg.MetadataValue.json(list(skipped)),
            "store": store.describe(),
        })

    return _rotate


def _paths(names: list[str]):
    unknown = [n for n in names if n not in PATHS_BY_NAME]
    if unknown:
        raise permanent(f"unknown path(s) {unknown} in the run config: use {sorted(PATHS_BY_NAME)}")
    return [p for p in APP_PATHS if p.name in names]


def build_rotation_checks(env: Environment) -> list[dg.AssetChecksDefinition]:
    prom_key = env.resource_key("prometheus")

    @dg.asset_check(asset=env.asset_key(ASSET), name="app_kept_serving_during_rotation", blocking=True,
                    required_resource_keys={prom_key},
                    description="The app's 5xx ratio over the rotation's own window (its start to its end, at "
                                "least min_window_seconds, pinned with PromQL's `@ <end>` like the phase "
                                "checks) stayed within the error budget.")
    def _serving(context, record: RotationRecord) -> dg.AssetCheckResult:
        prom = getattr(context.resources, prom_key)
        # The phases' query and budget over the rotation's own window: re-executed later, it judges the same
        # minutes. A rotation shorter than the minimum window is judged until that much has passed.
        window = app_promql.Window.at_least(record.started_at, record.finished_at, prom.min_window_seconds)
        query = app_promql.error_ratio(prom, window.start, window.end)
        ok, expectation = app_promql.within_error_budget(prom)
        time.sleep(max(0.0, window.end - time.time()))  # a pinned query about an instant still to come
        passed, reading, error = prom.wait_until(query, ok, timeout=prom.check_settle_seconds,
                                                 interval=prom.check_poll_seconds, retry_failed_values=False)
        value = f"{reading.value:g}" if reading else "no data"
        return dg.AssetCheckResult(
            passed=passed, severity=dg.AssetCheckSeverity.ERROR,
            description=f"5xx ratio {value} over the rotation's window pinned @ {window.end:.3f}, expected "
                        f"{expectation}" + (f": {error}" if error else ""),
            metadata={"query": dg.MetadataValue.text(query), "expected": expectation,
                      "window_start": dg.MetadataValue.timestamp(window.start),
                      "window_end": dg.MetadataValue.timestamp(window.end),
                      "prometheus": dg.MetadataValue.url(prom.url)})

    @dg.asset_check(asset=env.asset_key(ASSET), name="retired_credentials_refused", blocking=True,
                    description="Every retired rotation user's credential is refused by the database.")
    def _refused(context, record: RotationRecord) -> dg.AssetCheckResult:
        bad = [f"{p.retired} ({p.path}): {p.refusal}" for p in record.paths if not p.retired_refused]
        return dg.AssetCheckResult(
            passed=not bad, severity=dg.AssetCheckSeverity.ERROR,
            description=("still logs in: " + "; ".join(bad)) if bad else
            "refused: " + ", ".join(f"{p.retired} ({p.refusal}; tried {p.verified_with})" for p in record.paths),
            metadata={"paths": dg.MetadataValue.json([asdict(p) for p in record.paths])})

    return [_serving, _refused]




def job_name(env: Environment) -> str:
    return JOB_NAMES[env.name]


def build_rotation_job(env: Environment):
    return dg.define_asset_job(
        name=job_name(env),
        selection=dg.AssetSelection.assets(env.asset_key(ASSET)),  # with its checks
        description=f"Rotate the {env.name} app's database credentials with zero downtime (two rotation "
                    "users per path; the retired one's password is invalidated).",
        tags=env.tags,
    )


ROTATION_JOBS = {env.name: build_rotation_job(env) for env in ENVIRONMENTS}


def rotation_schedule() -> dg.ScheduleDefinition:
    """Regular rotation of the live app's credentials: STOPPED unless ROTATION_SCHEDULE_STATUS=RUNNING."""
    status = os.environ.get("ROTATION_SCHEDULE_STATUS", "STOPPED").upper()
    return dg.ScheduleDefinition(
        name="credential_rotation",
        job=ROTATION_JOBS[LIVE.name],
        cron_schedule=os.environ.get("ROTATION_CRON", "0 4 * * 1"),
        execution_timezone=os.environ.get("ROTATION_TIMEZONE", "UTC"),
        default_status=dg.DefaultScheduleStatus[status],
        tags={**LIVE.tags, "crdb-evolution/trigger": "rotation-schedule"},
        description="Rotate the live app's credentials every week (ROTATION_CRON). Stopped by default: "
                    "start it once the app mounts its URLs as files (k8s/app/deployment.yaml).",
    )


def credential_store(env: Environment):
    """The app's Secret (operator backend) or its URL files (local backend), from the environment."""
    if backend() == "local":
        default = REPO_ROOT / ".data" / "local" / ("credentials" if env == LIVE else "rehearsal-credentials")
        return FileCredentialStore(directory=setting(env, "APP_CREDENTIALS_DIR", str(default)))
    return KubernetesSecretStore(namespace=setting(env, "APP_NAMESPACE", "crdb-demo"),
                                 secret_name=setting(env, "APP_SECRET_NAME", "sample-app-credentials"),
                                 key_prefix="" if env == LIVE else "REHEARSAL_")


def rotation_resources() -> dict:
    return {env.resource_key(RESOURCE_KIND): credential_store(env) for env in ENVIRONMENTS}


def rotation_assets() -> list[dg.AssetsDefinition]:
    return [build_rotation_asset(env) for env in ENVIRONMENTS]


def rotation_checks() -> list[dg.AssetChecksDefinition]:
    return [c for env in ENVIRONMENTS for c in build_rotation_checks(env)]
