"""Graph-backed phase assets, built from the phase table.

Each phase is one asset whose steps are preflight -> backup -> scale -> apply_sql -> verify_replication.
Phase N+1 takes phase N's PhaseState as its input: the lineage shows in the UI, and a phase cannot run
before its predecessor has materialized.
"""


import time

import dagster as dg

from .configuration import backend, cluster_kinds, cluster_resource, crdb_resource
from .environments import ENVIRONMENTS, OWNERS, REHEARSAL, Environment
from .ops import STEPS, build_ops
from .ops.scale import wait_until_ready
from .phases import PHASES, Phase
from .plan import static_markdown
from .resources.cluster import REHEARSAL as REHEARSAL_ENVIRONMENT
from .zones import zone_statements


def build_phase_asset(env: Environment, phase: Phase, upstream: dg.AssetKey | None):
    ops = build_ops(env, phase)  # this phase's own ops, each closing over the phase

    def steps(state):
        for step in STEPS[1:]:
            state = ops.node(step)(state)
        return state

    if upstream is None:
        def compose():
            return steps(ops.node("preflight")())
    else:
        def compose(upstream):
            return steps(ops.node("preflight")(upstream))

    return dg.graph_asset(
        compose,
        name=phase.name,
        key_prefix=[env.prefix] if env.prefix else None,
        ins={"upstream": dg.AssetIn(key=upstream)} if upstream is not None else None,
        group_name=env.group,
        description=f"{phase.title}. {phase.description}",
        metadata={
            "nodes": phase.nodes,
            **phase.replication_facts(),
            "sql_files": ", ".join(phase.sql_files),
            "zone_configs": dg.MetadataValue.md("```sql\n" + "\n".join(zone_statements(phase)) + "\n```"),
            # What the steps do, by hand; the preflight step's metadata has it against the live cluster.
            "manual_steps": dg.MetadataValue.md(static_markdown(phase, cluster_resource(env), crdb_resource(env))),
            "environment": env.name,
        },
        tags={"crdb-evolution/phase": phase.name, **env.evolution_tags},
        kinds=cluster_kinds(backend()),
        owners=list(OWNERS),
    )


def fresh_rehearsal_environment() -> dg.AssetsDefinition:
    """The ONLY destructive step in the product: recreate the rehearsal cluster from scratch.

    Bound to the rehearsal cluster resource only, and refused unless that resource says it is a rehearsal
    environment (the backends also refuse to reset anything named like the live cluster).
    """
    key = REHEARSAL.resource_key("cluster")

    @dg.asset(
        key=REHEARSAL.asset_key("fresh_environment"),
        group_name=REHEARSAL.group,
        required_resource_keys={key},
        description="Recreates the rehearsal environment from nothing so each nightly rehearsal starts at phase 0.",
        pool=REHEARSAL.pool,
        tags=REHEARSAL.evolution_tags,
        kinds=cluster_kinds(backend()),
        owners=list(OWNERS),
    )
    def fresh_environment(context: dg.AssetExecutionContext) -> dict:
        res = getattr(context.resources, key)
        if res.environment != REHEARSAL_ENVIRONMENT:
            raise dg.Failure(f"refusing to reset: resource {key!r} is configured for environment "
                             f"{res.environment!r}, not {REHEARSAL_ENVIRONMENT!r}", allow_retries=False)
        control = res.control()
        detail = control.reset_rehearsal_environment()
        context.log.warning(f"rehearsal environment reset: {detail}")
        # The operator recreates the CrdbCluster at phase 0's size and returns at once: wait for those
        # nodes, so phase 0's preflight meets a cluster that answers (the local backend resets to none).
        if (nodes := control.desired_nodes()) > 0:
            wait_until_ready(control, nodes, res.ready_timeout_seconds, res.poll_interval_seconds, context.log)
        return {"reset_at": time.time(), "detail": detail, "nodes": nodes}

    return fresh_environment


def build_assets(env: Environment) -> list[dg.AssetsDefinition]:
    assets: list[dg.AssetsDefinition] = []
    upstream = None
    if env == REHEARSAL:
        reset = fresh_rehearsal_environment()
        assets.append(reset)
        upstream = reset.key
    for phase in PHASES:
        asset = build_phase_asset(env, phase, upstream)
        assets.append(asset)
        upstream = asset.key
    return assets


def all_assets() -> list[dg.AssetsDefinition]:
    from .drills import drill_assets  # the drills and the report come after the phases (drills/__init__.py)

    return [asset for env in ENVIRONMENTS for asset in build_assets(env)] + drill_assets()
