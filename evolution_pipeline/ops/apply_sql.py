"""apply_sql: the database, the phase's zone configs, its users and its SQL files. All idempotent.

Order: database (CockroachDB-only, so here and not in the portable bootstrap file) -> zone configs from the
phase table (node 1's locality read from the cluster when the phase pins voters to it) -> the phase's groups
(roles without LOGIN) and login users, a user's initial password from the environment set only when it is
created (none on an insecure cluster; after that rotate_credentials owns it) -> the phase's SQL files (which
grant to the groups and make the users members). Re-running converges to the same state and never sets a
password back, so it cannot lock the app out of a rotated user.
"""


import os
import time

import dagster as dg

from ..environments import Environment
from ..phases import SQL_USERS, Phase
from ..resources.sql import SqlError
from ..state import PhaseState
from ..zones import ZoneSetting, zone_plan
from .common import permanent, phase_op, resource, timed


def build_apply_sql(env: Environment, phase: Phase) -> dg.OpDefinition:
    @phase_op(env, phase, "apply_sql", "crdb", "sample_app")
    def apply_sql(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
        crdb = resource(context, env, "crdb")
        # An insecure cluster refuses passwords (28P01): none are needed or sent there.
        passwords = {} if crdb.insecure else _passwords(phase.users)
        if crdb.insecure and phase.users:
            context.log.warning(f"insecure cluster: password not set for {', '.join(phase.users)}")
        created: list[str] = []
        groups_created: list[str] = []
        with timed() as t:
            try:
                crdb.ensure_database()
                zones = _set_zones(context, crdb, phase)
                for group in phase.groups:
                    if crdb.ensure_group(group):
                        groups_created.append(group)
                for user in phase.users:
                    if crdb.ensure_login_user(user, passwords.get(user)):
                        created.append(user)
                counts = {path.name: crdb.run_script(path) for path in phase.sql_paths()}
            except SqlError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == "23514":
                    raise permanent(
                        f"{phase.name}: CockroachDB refused the phase's zone config ({exc}). The phase table "
                        "(evolution_pipeline/phases.py) asks for replication that ZoneConfig.Validate rejects: "
                        "fix the table (num_replicas = 2 needs num_voters = 1; never 2 voters), then re-execute."
                    ) from None
                raise permanent(f"{phase.name}: {exc}. Fix the cause and re-execute; every statement is "
                                "idempotent, so what already ran is not repeated harmfully.") from None
        statements = tuple(z.sql() for z in zones)
        context.log.info(f"{phase.name}: groups created {groups_created or 'none'}, users created "
                         f"{created or 'none'}, statements {counts}")
        context.add_output_metadata({"insecure_cluster": crdb.insecure})
        serving_since = state.app_serving_since or _wait_for_app(context, resource(context, env, "sample_app"))
        return state.with_timing("apply_sql", t["seconds"], sql_files_applied=tuple(counts),
                                 app_serving_since=serving_since, zone_statements=statements,
                                 statements_per_file=counts, groups_created=tuple(groups_created),
                                 users_created=tuple(created))

    return apply_sql


def _set_zones(context, crdb, phase) -> list[ZoneSetting]:
    """One statement per zone. Node 1's locality is read only when the phase pins voters to it."""
    locality = crdb.first_node_locality() if phase.pins_voters else None
    if locality:
        context.log.info(f"{phase.name}: pinning voters to node 1's locality {locality}")
    zones = zone_plan(phase, locality)
    for z in zones:
        context.log.info(z.sql())
        crdb.set_zone(z.target, z.num_replicas, z.num_voters, z.voter_constraints)
    return zones


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
    """Initial passwords of the users that get one (a standby user has none: SQL_USERS maps it to None)."""
    passwords, missing = {}, []
    for user in users:
        if SQL_USERS[user] is None:
            continue
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
