"""scale: grow the cluster to the phase's node count and wait until every node is ready."""


import time

import dagster as dg

from ..environments import Environment
from ..phases import Phase
from ..resources.cluster import ClusterControl, ClusterControlError
from ..state import PhaseState
from .common import permanent, phase_op, resource, timed


def build_scale(env: Environment, phase: Phase) -> dg.OpDefinition:
    @phase_op(env, phase, "scale", "cluster")
    def scale(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
        res = resource(context, env, "cluster")
        with timed() as t:
            try:
                control = res.control()
                changed = control.scale_to(phase.nodes)
            except ClusterControlError as exc:  # scale-down refused, RBAC, missing CR or binary: say so once
                raise permanent(str(exc)) from None
            context.log.info(f"{control.describe()}: "
                             f"{'asked for' if changed else 'already at'} {phase.nodes} node(s)")
            wait_until_ready(control, phase.nodes, res.ready_timeout_seconds, res.poll_interval_seconds,
                             context.log)
        context.add_output_metadata({
            "nodes": phase.nodes,
            "changed": changed,
            "scale_seconds": dg.MetadataValue.float(round(t["seconds"], 3)),
        })
        return state.with_timing("scale", t["seconds"], scaled=changed)

    return scale


def wait_until_ready(control: ClusterControl, target: int, timeout: float, interval: float, log) -> None:
    """Poll the backend until every node is ready; log each change; fail with what it saw on timeout."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            status = control.status()
            summary = status.summary()
            ready = status.is_ready(target)
        except ClusterControlError as exc:
            summary, ready = f"status unavailable: {exc}", False
        if summary != last:
            log.info(f"waiting for {target} ready node(s): {summary}")
            last = summary
        if ready:
            return
        if time.monotonic() >= deadline:
            raise permanent(
                f"{control.describe()} did not reach {target} ready node(s) within {timeout:g}s. Last seen: "
                f"{summary}. Inspect the nodes (kubectl -n <ns> get crdbnodes,pods / the node logs), then "
                "re-execute from failure: the op converges from wherever the cluster is.",
                last_status=summary,
            )
        time.sleep(interval)
