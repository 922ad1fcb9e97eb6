"""verify_replication: poll until every range has the phase's voter count; record time to converge.

Uses supported statements only (SHOW RANGES ... / SHOW CLUSTER RANGES, SHOW ZONE CONFIGURATION), never
crdb_internal, which newer versions gate behind allow_unsafe_internals.
"""


import time

import dagster as dg

from ..environments import Environment
from ..resources.sql import RangeReplicas, SqlError
from ..state import PhaseState
from .common import permanent, phase_of, phase_op, resource


def build_verify_replication(env: Environment) -> dg.OpDefinition:
    @phase_op(env, "verify_replication", "crdb", "grafana", retry=False)
    def verify_replication(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
        phase = phase_of(state)
        crdb = resource(context, env, "crdb")
        start = time.monotonic()
        deadline = start + crdb.replication_timeout_seconds
        last_count = None
        while True:
            short = _ranges_off_target(crdb, phase)
            if not short:
                break
            if len(short) != last_count:
                context.log.info(f"{len(short)} range(s) not yet at target: {_describe(short[:5])}")
                last_count = len(short)
            if time.monotonic() >= deadline:
                raise permanent(
                    f"{len(short)} range(s) still not at the target voter count after "
                    f"{crdb.replication_timeout_seconds:g}s: {_describe(short[:20])}. Check node health and "
                    "`SHOW ZONE CONFIGURATIONS`, then re-execute from failure.",
                    ranges_off_target=len(short),
                )
            time.sleep(crdb.replication_poll_seconds)
        seconds = time.monotonic() - start
        zone_default = crdb.zone_replicas("RANGE default")
        context.log.info(f"{phase.name}: every range at target after {seconds:.1f}s")
        finished = time.time()
        note = resource(context, env, "grafana").annotate(
            state.started_at or finished, finished, tags=[phase.name, env.name],
            text=f"{phase.title} ({env.name}): {phase.nodes} node(s), RF {phase.replication_factor}, "
                 f"converged in {seconds:.0f}s")
        context.log.info(note)
        context.add_output_metadata({
            "nodes": phase.nodes,
            "replication_factor": phase.replication_factor,
            "system_replication_factor": phase.system_replication_factor,
            "expected_voters_data": phase.expected_data_replicas,
            "expected_voters_system": phase.expected_system_replicas,
            "zone_default_num_replicas": zone_default if zone_default is not None else -1,
            "converge_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "backup_uri": (state.backup.uri if state.backup and state.backup.uri else ""),
            "backup_status": state.backup.status if state.backup else "",
        })
        return state.with_timing("verify_replication", seconds, converge_seconds=round(seconds, 3),
                                 finished_at=finished)

    return verify_replication


def _ranges_off_target(crdb, phase) -> list[tuple[str, RangeReplicas, str]]:
    """Ranges whose voter count differs from what the phase's zone configs make CockroachDB target.

    App ranges follow the data RF; cluster-wide ranges follow either the data or the system RF (the
    allocator caps both by the live nodes, see phases.needed_voters).
    """
    data, system = phase.expected_data_replicas, phase.expected_system_replicas
    try:
        app = crdb.range_voters(crdb.database)
        cluster = crdb.range_voters("cluster")
    except SqlError as exc:
        raise permanent(f"cannot read range replication: {exc}") from exc
    off = [(crdb.database, r, str(data)) for r in app if r.voters != data]
    allowed = {data, system}
    off += [("cluster", r, "/".join(map(str, sorted(allowed)))) for r in cluster if r.voters not in allowed]
    return off


def _describe(items) -> str:
    return "; ".join(f"{scope} r{r.range_id} has {r.voters} voter(s), want {want}" for scope, r, want in items)
