"""preflight: is it safe to change the topology now?

- the phase follows its predecessor (phase N+1 needs phase N's state),
- the target is not below the current node count (the evolution never scales down),
- no unavailable ranges (Prometheus, scoped to this cluster),
- the sample app answers /readyz once it has something to serve (it is never stopped; in a rehearsal the
  op starts the app's own background load so the checks have traffic to judge),
- a phase that pins voters to node 1's locality singles out node 1: no other node of the phase has a locality
  the pin admits (the backend's planned localities, and the cluster's replica localities once nodes run),
- the nodes' localities are the evolution file's (ops/localities.py).
"""


import time
from typing import Any

import dagster as dg

from ..environments import REHEARSAL, Environment
from ..phases import EVOLUTION, PHASES, Phase, previous_phase
from ..plan import CHANGE, build_plan, render
from ..resources.cluster import ClusterControlError
from ..resources.sample_app import SampleAppError
from ..resources.sql import FIRST_NODE_ID, SqlError
from ..roles import READER
from ..state import PhaseState
from ..zones import clash_advice, pin_clashes, shared_pin_ranges, voter_constraints_for
from .common import permanent, phase_op, resource
from .localities import check_localities


def build_preflight(env: Environment, phase: Phase) -> dg.OpDefinition:
    @phase_op(
        env, phase, "preflight", "cluster", "crdb", "prometheus", "sample_app",
        retry=False,
        ins={"upstream": dg.In(dg.Any, default_value=None,
                               description="the previous phase's PhaseState (or the rehearsal reset)")},
        out=dg.Out(PhaseState),
    )
    def preflight(context: dg.OpExecutionContext, upstream: Any = None) -> PhaseState:
        previous = upstream if isinstance(upstream, PhaseState) else None
        expected = previous_phase(phase)
        if expected and (previous is None or previous.phase != expected.name):
            raise permanent(f"{phase.name} must follow {expected.name}; materialize {expected.name} first")

        try:
            control = resource(context, env, "cluster").control()
            current = control.desired_nodes()
        except ClusterControlError as exc:
            raise permanent(str(exc)) from None
        if phase.nodes < current:
            raise permanent(
                f"{control.describe()} already asks for {current} nodes; {phase.name} wants {phase.nodes}. "
                "The evolution never scales down: run the phase that matches the cluster instead."
            )
        facts = {"current_nodes": current, "target_nodes": phase.nodes}
        facts["voter_pin"] = check_pin_singles_out_node1(control, resource(context, env, "crdb"), phase, current)
        facts["localities"] = check_localities(control, resource(context, env, "crdb"), phase, current,
                                               EVOLUTION.source)

        if current == 0:
            facts["unavailable_ranges"] = "skipped: the cluster has no nodes yet"
        else:
            prom = resource(context, env, "prometheus")
            # Waits for data (a cluster just (re)created has no series until its first scrapes), not
            # for a non-zero count to clear: unavailable ranges fail at once.
            passed, reading, error = prom.wait_until(
                f"sum({prom.crdb('ranges_unavailable')})", lambda v: v == 0,
                timeout=prom.check_settle_seconds, interval=prom.check_poll_seconds, retry_failed_values=False,
            )
            if reading is None:
                raise permanent(f"cannot confirm the cluster is healthy before {phase.name}: {error}")
            if not passed:
                raise permanent(f"{reading.value:g} unavailable range(s) ({reading.query}): fix the cluster "
                                "before changing its topology")
            facts["unavailable_ranges"] = reading.value

        facts["sample_app"], serving = _check_app(context, env, phase, current)
        context.log.info(f"preflight for {phase.name} passed: {facts}")
        # Facts and plan travel in the state, so the phase's materialization shows them (state_metadata.py).
        return PhaseState(
            phase=phase.name,
            nodes=phase.nodes,
            data=phase.data,
            system=phase.system,
            run_id=context.run.root_run_id or context.run_id,
            previous_phase=previous.phase if previous else None,
            started_at=(now := time.time()),
            app_serving_since=now if serving else None,
            preflight=facts,
            plan=_live_plan(context, env, phase),
        )

    return preflight


def check_pin_singles_out_node1(control, crdb, phase, current_nodes: int) -> str:
    """Refuse, before anything changes, a pinning phase whose pin would admit a node other than node 1.

    voter_constraints name node 1's locality, not node 1: a second node with that locality (a local zone
    list shorter than the phase's nodes, two pods in one Kubernetes zone) satisfies them too, the voter may
    settle there, and verify_replication would only find out by waiting. Two sources, whichever exist: the
    localities the backend gives its nodes (local backend: its zone list), and, once nodes run, the cluster's
    own replica localities (a range with two replicas in node 1's locality). Returns what it checked."""
    if not phase.pins_voters:
        return "no voter pin in this phase"
    planned = getattr(control, "planned_localities", lambda _n: None)(phase.nodes) or {}
    if clashes := pin_clashes(planned, FIRST_NODE_ID):
        listing = "; ".join(f"node {n}: {loc}" for n, loc in sorted(planned.items()))
        raise permanent(
            f"{phase.name} pins every voter to node {FIRST_NODE_ID}'s locality "
            f"({voter_constraints_for(planned[FIRST_NODE_ID])}), but node(s) "
            f"{', '.join(str(n) for n in clashes)} would satisfy it too ({listing}), so the voter could settle "
            f"there. To fix: {clash_advice()}; then re-execute.", nodes=listing)
    if current_nodes < 1:
        return f"planned localities: {planned or 'not known before the nodes run'}"
    try:
        pin = crdb.first_node_locality()
        shared = shared_pin_ranges(crdb.range_replicas("cluster"), pin)
    except SqlError as exc:
        raise permanent(f"{phase.name} pins voters to node {FIRST_NODE_ID}'s locality, which cannot be read: "
                        f"{exc}") from None
    if shared:
        r = shared[0]
        stores = ", ".join(f"s{s} ({loc or 'no locality'})" for s, loc in r.localities)
        raise permanent(
            f"{phase.name} pins every voter to node {FIRST_NODE_ID}'s locality {pin}, but another node already "
            f"has it: {len(shared)} range(s) hold two replicas there (e.g. r{r.range_id} on {stores}). "
            f"To fix: {clash_advice()}; then re-execute.")
    return f"node {FIRST_NODE_ID}'s locality {pin} is its own" + (f" (planned: {planned})" if planned else "")


def _live_plan(context, env: Environment, phase) -> str:
    """What this phase is about to change, read from the cluster before anything changes (the same plan as
    `python -m evolution_pipeline plan`). Reading it never fails the step: a cluster it cannot read is
    said in the plan itself."""
    plan = build_plan([phase], environment=env.name, cluster=resource(context, env, "cluster"),
                      crdb=resource(context, env, "crdb"))
    changes = [f"{s.kind}: {s.summary}" for s in plan.phases[0].steps if s.status == CHANGE]
    context.log.info(f"{phase.name} will change: {'; '.join(changes) or 'nothing (already done)'}")
    return render(plan, "markdown")


def _check_app(context, env: Environment, phase, current_nodes: int) -> tuple[str, bool]:
    """(what to record, whether the app is serving already)."""
    app = resource(context, env, "sample_app")
    if env == REHEARSAL:
        # The rehearsal judges its own app's traffic: start its load before anything else (the control
        # API answers without a database), so a freshly reset environment has traffic from phase 0 on.
        try:
            app.set_background_load(True)
        except SampleAppError as exc:
            raise permanent(f"cannot start the rehearsal app's background load: {exc}") from None
    readiness = app.readiness()
    # Before the first phase has created the database the app has nothing to serve: not ready is expected.
    has_data = current_nodes > 0 and resource(context, env, "crdb").database_exists()
    if not readiness.ready:
        if has_data:
            raise permanent(
                f"the sample app is not ready ({readiness.status_code}: {readiness.detail}); the evolution must "
                "not change the topology under an app that is already failing. Fix the app, then re-execute."
            )
        return f"not ready yet (expected before {phase.name} creates the database): {readiness.detail}", False
    body = readiness.detail if isinstance(readiness.detail, dict) else {}
    reader_done = [p.name for p in PHASES[: phase.index] if READER.users[0] in p.users]
    if "reader" in body.get("degraded", []) and reader_done:
        raise permanent(
            f"the sample app still reads through the writer although {reader_done[0]} created "
            f"{'/'.join(READER.users)}: its reader login is refused, so the reader URL (user or password) does not "
            "match the user's password (APP_READER_PASSWORD, or the last rotate_credentials run). "
            f"Fix the app's Secret, wait for /readyz to show reader_path=reader, then re-execute. "
            f"(/readyz: {body.get('checks', {}).get('reader', {}).get('detail', '')})"
        )
    load = "; rehearsal background load on" if env == REHEARSAL else ""
    return f"ready (reads via the {body.get('reader_path', 'reader')} path){load}", True
