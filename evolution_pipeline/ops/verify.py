"""verify_replication: poll until every range has the phase's voters AND non-voters; record time to converge.

Targets are computed like the allocator does (phases.needed_voters / needed_non_voters, ports of
GetNeededVoters / GetNeededNonVoters). A phase that pins voters to node 1 also waits until every voter sits
in node 1's locality. Uses supported statements only (SHOW RANGES ... / SHOW CLUSTER RANGES, SHOW ZONE
CONFIGURATION), never crdb_internal, which newer versions gate behind allow_unsafe_internals.

The replica arrays hold STORE IDs (resources/sql.py RangeReplicas), so "on node 1" is read through
replica_localities: a voter is where node 1 is when its store's node has node 1's locality. That is node 1
itself only while no other node shares the locality; a range with two replicas there proves one does, and
then the wait fails at once instead of timing out (the pin cannot tell the two nodes apart).
"""


import time
from dataclasses import dataclass

import dagster as dg

from ..environments import Environment
from ..phases import Phase
from ..resources.sql import FIRST_NODE_ID, RangeReplicas, SqlError
from ..state import PhaseState
from ..zones import clash_advice, satisfies_pin, shared_pin_ranges
from .common import permanent, phase_op, resource


@dataclass(frozen=True)
class Target:
    voters: int
    non_voters: int

    def __str__(self) -> str:
        return f"{self.voters} voter(s) + {self.non_voters} non-voter(s)"


@dataclass(frozen=True)
class OffTarget:
    scope: str
    range: RangeReplicas
    want: str

    def __str__(self) -> str:
        r = self.range
        return (f"{self.scope} r{r.range_id} has {len(r.voters)} voter(s) on stores {_where(r, r.voters)} + "
                f"{len(r.non_voters)} non-voter(s) on stores {_where(r, r.non_voters)}, want {self.want}")


def _where(r: RangeReplicas, stores) -> str:
    return "[" + ", ".join(f"s{s} ({r.locality_of(s) or 'no locality'})" for s in stores) + "]"


def build_verify_replication(env: Environment, phase: Phase) -> dg.OpDefinition:
    @phase_op(env, phase, "verify_replication", "crdb", "grafana", retry=False)
    def verify_replication(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
        crdb = resource(context, env, "crdb")
        seconds = _wait_until_on_target(context, crdb, phase)
        zone_default = crdb.zone_config("RANGE default")
        context.log.info(f"{phase.name}: every range at target after {seconds:.1f}s")
        finished = time.time()
        note = resource(context, env, "grafana").annotate(
            state.started_at or finished, finished, tags=[phase.name, env.name],
            text=f"{phase.title} ({env.name}): {phase.nodes} node(s), data {_data_target(phase)}, "
                 f"tolerates {phase.failures_tolerated} node failure(s), converged in {seconds:.0f}s")
        context.log.info(note)
        # The whole phase's facts (backup, timings, plan, converge seconds...) reach the materialization through
        # the IO manager (state_metadata.py); this adds only what this step read and the state does not hold.
        read = {"zone_default_num_replicas": zone_default and zone_default.num_replicas,
                "zone_default_num_voters": zone_default and zone_default.num_voters}
        context.add_output_metadata({
            **phase.replication_facts(),
            # A value CockroachDB did not report is left out, never -1 (which would plot as a real point).
            **{k: v for k, v in read.items() if isinstance(v, int)},
        })
        return state.with_timing("verify_replication", seconds, converge_seconds=round(seconds, 3),
                                 finished_at=finished)

    return verify_replication


def _wait_until_on_target(context, crdb, phase) -> float:
    start = time.monotonic()
    deadline = start + crdb.replication_timeout_seconds
    last_count = None
    while short := ranges_off_target(crdb, phase):
        if len(short) != last_count:
            context.log.info(f"{len(short)} range(s) not yet at target: {_describe(short[:5])}")
            last_count = len(short)
        if time.monotonic() >= deadline:
            raise permanent(
                f"{len(short)} range(s) still not at the phase's voters and non-voters after "
                f"{crdb.replication_timeout_seconds:g}s: {_describe(short[:20])}. Check node health and "
                "`SHOW ZONE CONFIGURATIONS`, then re-execute from failure.",
                ranges_off_target=len(short),
            )
        time.sleep(crdb.replication_poll_seconds)
    return time.monotonic() - start


def ranges_off_target(crdb, phase) -> list[OffTarget]:
    """Ranges whose voters or non-voters differ from what the phase's zone configs make CockroachDB target.

    App ranges follow the data zone; cluster-wide ranges follow either the data or the system zone (the
    allocator caps both by the nodes, see phases.needed_voters).
    """
    data = Target(phase.expected_data_voters, phase.expected_data_non_voters)
    system = Target(phase.expected_system_voters, phase.expected_system_non_voters)
    try:
        app = crdb.range_replicas(crdb.database)
        cluster = crdb.range_replicas("cluster")
        pin = crdb.first_node_locality() if phase.pins_voters else None
    except SqlError as exc:
        raise permanent(f"cannot read range replication: {exc}") from None
    if pin:
        _refuse_shared_pin(app + cluster, pin)
    off = [OffTarget(crdb.database, r, _want(data, pin)) for r in app if not _matches(r, {data}, pin)]
    off += [OffTarget("cluster", r, " or ".join(sorted({_want(data, pin), _want(system, pin)})))
            for r in cluster if not _matches(r, {data, system}, pin)]
    return off


def _refuse_shared_pin(ranges: list[RangeReplicas], pin: str) -> None:
    """Another node in node 1's locality can hold the pinned voter: waiting cannot fix that, so fail now."""
    shared = shared_pin_ranges(ranges, pin)
    if shared:
        r = shared[0]
        raise permanent(
            f"another node shares node {FIRST_NODE_ID}'s locality {pin}: {len(shared)} range(s) hold two "
            f"replicas there (e.g. r{r.range_id} on stores {_where(r, r.voters + r.non_voters)}), so "
            f"voter_constraints cannot keep the voter on node {FIRST_NODE_ID}. To fix: {clash_advice()}; "
            "then re-execute.", ranges_sharing_node1_locality=len(shared))


def _matches(r: RangeReplicas, targets: set[Target], pin: str | None) -> bool:
    if Target(len(r.voters), len(r.non_voters)) not in targets:
        return False
    # Pinned: every voter (and so the lease) in node 1's locality, the other copies are read replicas.
    return pin is None or all(satisfies_pin(r.locality_of(s), pin) for s in r.voters)


def _want(target: Target, pin: str | None) -> str:
    return f"{target}" + (f", voters on node {FIRST_NODE_ID} ({pin})" if pin else "")


def _data_target(phase) -> str:
    return f"{phase.expected_data_voters} voter(s) + {phase.expected_data_non_voters} read replica(s)"


def _describe(items) -> str:
    return "; ".join(str(i) for i in items)
