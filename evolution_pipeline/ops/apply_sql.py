"""apply_sql: the database, the phase's zone configs, its users and its SQL files. All idempotent.

Order: database (CockroachDB-only, so here and not in the portable bootstrap file) -> zone configs from the
phase table -> login users with passwords from the environment -> the phase's SQL files (which may grant to
those users). Re-running converges to the same state.
"""


import os
import time

import dagster as dg

from ..environments import Environment
from ..phases import SQL_USERS
from ..resources.sql import SqlError
from ..state import PhaseState
from ..zones import zone_plan
from .common import permanent, phase_of, phase_op, resource, timed


def build_apply_sql(env: Environment) -> dg.OpDefinition:
    @phase_op(env, "apply_sql", "crdb", "sample_app")
    def apply_sql(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
        phase = phase_of(state)
        crdb = resource(context, env, "crdb")
        passwords = _passwords(phase.users)
        created: list[str] = []
        with timed() as t:
            try:
                crdb.ensure_database()
                for target, replicas in zone_plan(phase):
                    crdb.set_zone_replicas(target, replicas)
                for user in phase.users:
                    if crdb.ensure_login_user(user, passwords[user]):
                        created.append(user)
                counts = {path.name: crdb.run_script(path) for path in phase.sql_paths()}
            except SqlError as exc:
                raise permanent(f"{phase.name}: {exc}. Fix the cause and re-execute; every statement is "
                                "idempotent, so what already ran is not repeated harmfully.") from exc
        context.log.info(f"{phase.name}: zones {zone_plan(phase)}, users created {created or 'none'}, "
                         f"statements {counts}")
        context.add_output_metadata({
            "zones": dg.MetadataValue.json({target: n for target, n in zone_plan(phase)}),
            "users_created": dg.MetadataValue.json(created),
            "statements_per_file": dg.MetadataValue.json(counts),
        })
        serving_since = state.app_serving_since or _wait_for_app(context, resource(context, env, "sample_app"))
        return state.with_timing("apply_sql", t["seconds"], sql_files_applied=tuple(counts),
                                 app_serving_since=serving_since)

    return apply_sql


def _wait_for_app(context, app) -> float:
    """The database and users now exist: give the app the moment it needs to connect, so the app checks
    judge it from when it could serve, not from before its database existed."""
    deadline = time.monotonic() + app.ready_timeout_seconds
    while not (readiness := app.readiness()).ready and time.monotonic() < deadline:
        time.sleep(app.poll_seconds)
    if readiness.ready:
        context.log.info("the sample app is ready on the new database")
    else:
        context.log.warning(f"the sample app is still not ready ({readiness.detail}); the app checks will judge it")
    return time.time()


def _passwords(users: tuple[str, ...]) -> dict[str, str]:
    passwords, missing = {}, []
    for user in users:
        value = os.environ.get(SQL_USERS[user], "")
        if value:
            passwords[user] = value
        else:
            missing.append(SQL_USERS[user])
    if missing:
        raise permanent(
            f"set {', '.join(missing)} in the environment (from a Kubernetes Secret in the cluster, or "
            ".data/local/secrets.env locally); passwords are never stored in the SQL files"
        )
    return passwords
