"""The node-loss drill: after phase 2, take one node away under the app's load and prove nothing broke.

It stops one node (never node 1), waits until Prometheus shows the survivors agreeing that a node is gone
(time to detect), keeps it away for `outage_seconds` while reading SQL through the survivors, then brings it
back and waits until the backend reports every node ready, Prometheus shows every node live with no
under-replicated range, and SQL shows every range back at the phase's voters (time to recover). Every wait is
bounded, and the node is brought back in a `finally`: also when a wait times out, SQL fails or the run is
interrupted. The asset records facts; its blocking checks (drills/checks.py) judge them from Prometheus.
"""

import time
from dataclasses import dataclass, field

import dagster as dg

from ..configuration import backend, cluster_kinds
from ..environments import OWNERS, REHEARSAL, Environment
from ..ops.common import permanent
from ..ops.verify import ranges_off_target
from ..phases import LAST_PHASE, Phase
from ..resources.cluster import ClusterControlError
from ..resources.prometheus import PrometheusResource
from ..resources.sql import SqlError
from ..state import PhaseState
from ..state_metadata import float_figures
from . import nodes as node_control

DRILL_NAME = "node_loss_drill"


class NodeLossConfig(dg.Config):
    node: int = 0  # 0: the phase's highest node (node 1 is always refused)
    outage_seconds: float = 30.0  # how long the node stays away once Prometheus has seen it gone
    detect_timeout_seconds: float = 120.0
    recover_timeout_seconds: float = 600.0
    poll_seconds: float = 2.0


@dataclass(frozen=True)
class NodeLossResult:
    environment: str
    phase: str
    nodes: int
    node: int
    stopped_at: float
    ended_at: float
    restarted_at: float | None = None
    detected_at: float | None = None  # first reading of the survivors agreeing on nodes - 1 live nodes
    recovered_at: float | None = (
        None  # every node ready and live, no under-replicated range, ranges on target
    )
    detect_timeout_seconds: float = 0.0
    recover_timeout_seconds: float = 0.0
    max_unavailable_seen: float | None = None  # from the drill's own polls (the checks re-judge every scrape)
    sql_reads_during_outage: int = 0  # SHOW CLUSTER RANGES answered through the survivors
    sql_errors_during_outage: tuple[str, ...] = ()
    ranges_off_target_after: int | None = None  # None: the drill never got to count them
    stop_detail: str = ""
    restart_detail: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def detect_seconds(self) -> float | None:
        return None if self.detected_at is None else round(self.detected_at - self.stopped_at, 3)

    @property
    def recover_seconds(self) -> float | None:
        if self.recovered_at is None or self.restarted_at is None:
            return None
        return round(self.recovered_at - self.restarted_at, 3)

    @property
    def duration_seconds(self) -> float:
        return round(self.ended_at - self.stopped_at, 3)

    @property
    def recovered(self) -> bool:
        return self.recovered_at is not None

    @property
    def survivors(self) -> int:
        """Live nodes the survivors should agree on while the node is away (the shared checks read it)."""
        return self.nodes - 1

    @property
    def away(self) -> str:
        return f"node {self.node}"


@dataclass
class _Drill:
    """The resources of one drill run and what it has seen so far."""

    control: object
    prom: PrometheusResource
    crdb: object
    phase: Phase
    node: int
    cfg: NodeLossConfig
    log: object
    facts: dict = field(default_factory=dict)
    what: str = ""  # what is away, for the notes ("zone us-east1-c (nodes 3, 6)"); default "node <n>"

    def survivors_live(self) -> str:
        return f"max({self.prom.crdb('liveness_livenodes')})"

    def poll(self, expr: str, ok, timeout: float) -> tuple[bool, float | None]:
        passed, reading, error = self.prom.wait_until(
            expr, ok, timeout=timeout, interval=self.cfg.poll_seconds
        )
        if not passed:
            self.note(
                f"`{expr}` not as expected within {timeout:g}s: "
                f"{error or (reading and f'last value {reading.value:g}')}"
            )
        return passed, (reading.value if reading else None)

    def note(self, text: str) -> None:
        self.log.warning(text)
        self.facts.setdefault("notes", []).append(text)


def run_node_loss(
    control, prom: PrometheusResource, crdb, phase: Phase, cfg: NodeLossConfig, env: Environment, log
) -> NodeLossResult:
    node = cfg.node or phase.nodes
    drill = _Drill(control, prom, crdb, phase, node, cfg, log)
    _preflight(drill)
    drill.facts["stopped_at"] = time.time()
    try:
        try:
            drill.facts["stop_detail"] = node_control.stop_node(control, node)
        except ClusterControlError as exc:
            raise permanent(f"the node-loss drill could not stop node {node}: {exc}") from exc
        log.warning(f"node-loss drill: node {node} taken away ({drill.facts['stop_detail']})")
        _detect(drill)
        _hold_outage(drill)
    finally:
        _bring_back(drill)
    facts = drill.facts
    return NodeLossResult(
        environment=env.name,
        phase=phase.name,
        nodes=phase.nodes,
        node=node,
        stopped_at=facts["stopped_at"],
        ended_at=facts["ended_at"],
        restarted_at=facts.get("restarted_at"),
        detected_at=facts.get("detected_at"),
        recovered_at=facts.get("recovered_at"),
        detect_timeout_seconds=cfg.detect_timeout_seconds,
        recover_timeout_seconds=cfg.recover_timeout_seconds,
        max_unavailable_seen=facts.get("max_unavailable"),
        sql_reads_during_outage=facts.get("sql_reads", 0),
        sql_errors_during_outage=tuple(facts.get("sql_errors", ())),
        ranges_off_target_after=facts.get("off_target"),
        stop_detail=facts.get("stop_detail", ""),
        restart_detail=facts.get("restart_detail", ""),
        notes=tuple(facts.get("notes", ())),
    )


def _preflight(d: _Drill) -> None:
    """Refuse to start unless the cluster is whole and every range keeps a voter majority without the node."""
    if d.phase.failures_tolerated < 1:
        raise permanent(
            f"{d.phase.name} tolerates no node failure: the node-loss drill runs only after {LAST_PHASE.name}"
        )
    try:
        node_control.check_node(d.node, d.phase.nodes)
        node_control.require_drill_support(d.control)
        status = d.control.status()
    except ClusterControlError as exc:
        raise permanent(f"node-loss drill not started: {exc}") from exc
    if not status.is_ready(d.phase.nodes):
        raise permanent(
            f"node-loss drill not started: the cluster is not at {d.phase.nodes} ready nodes "
            f"({status.summary()}); nothing was stopped"
        )
    whole, value = d.poll(
        f"min({d.prom.crdb('liveness_livenodes')})",
        lambda v: v == d.phase.nodes,
        d.cfg.detect_timeout_seconds,
    )
    if not whole:
        raise permanent(
            f"node-loss drill not started: Prometheus does not show {d.phase.nodes} live nodes "
            f"(last value {value}); nothing was stopped"
        )
    planned = getattr(d.control, "planned_localities", lambda _n: None)(d.phase.nodes) or {}
    locality = planned.get(d.node)
    fragile = _ranges_without_majority(d.crdb, locality)
    if fragile:
        where = (f"node {d.node}'s locality {locality}" if locality
                 else f"any one locality (node {d.node}'s is not known)")
        raise permanent(
            f"node-loss drill not started: {len(fragile)} range(s) would lose their voter majority "
            f"without {where} (e.g. {fragile[:5]}); nothing was stopped"
        )


def _ranges_without_majority(crdb, locality: str | None) -> list[int]:
    """Range IDs whose voters outside `locality` are not a majority of all their voters (SHOW CLUSTER RANGES).

    The voter arrays hold STORE IDs (resources/sql.py RangeReplicas) and no supported statement maps a store
    to its node ID, so the node is found by its locality: a store counts as the stopped node's when its node
    has that locality (stricter than the node alone when two nodes share it). With the locality unknown
    (a backend that cannot say), every locality holding a voter is tried: the drill starts only if the range
    survives losing any one of them, whichever node is stopped. A voter with no locality counts as lost."""
    try:
        ranges = crdb.range_replicas("cluster")
    except SqlError as exc:
        raise permanent(f"node-loss drill not started: cannot read the ranges: {exc}") from exc
    fragile = []
    for r in ranges:
        places = [r.locality_of(v) for v in r.voters]
        candidates = [locality] if locality else sorted({p for p in places if p}) or [None]
        if any(sum(1 for p in places if p and p != lost) * 2 <= len(places) for lost in candidates):
            fragile.append(r.range_id)
    return fragile


def _detect(d: _Drill) -> None:
    gone, _ = d.poll(d.survivors_live(), lambda v: v == d.phase.nodes - 1, d.cfg.detect_timeout_seconds)
    if gone:
        d.facts["detected_at"] = time.time()
        d.log.info(
            f"node-loss drill: Prometheus shows {d.phase.nodes - 1} live nodes after "
            f"{d.facts['detected_at'] - d.facts['stopped_at']:.1f}s"
        )


def _hold_outage(d: _Drill) -> None:
    """Keep the node away for outage_seconds, reading SQL through the survivors and watching for unavailable
    ranges at every poll (the checks later judge every scrape of the window, not just these polls)."""
    until = time.monotonic() + d.cfg.outage_seconds
    while True:
        _observe_unavailable(d)
        try:
            d.crdb.range_replicas("cluster")
            d.facts["sql_reads"] = d.facts.get("sql_reads", 0) + 1
        except SqlError as exc:
            d.facts.setdefault("sql_errors", []).append(str(exc)[:300])
        if time.monotonic() >= until:
            return
        time.sleep(min(d.cfg.poll_seconds, max(0.0, until - time.monotonic())))


def _observe_unavailable(d: _Drill) -> None:
    try:
        value = d.prom.query_value(f"sum({d.prom.crdb('ranges_unavailable')})").value
    except Exception as exc:  # noqa: BLE001  a missed poll is not a verdict: the checks judge every scrape afterwards
        d.log.info(f"node-loss drill: unavailable-ranges poll failed: {exc}")
        return
    d.facts["max_unavailable"] = max(value, d.facts.get("max_unavailable", 0.0))


def _bring_back(d: _Drill) -> None:
    """Always runs: restart the node, then wait (bounded) for the backend, Prometheus and SQL to agree."""
    d.facts["restarted_at"] = time.time()
    try:
        d.facts["restart_detail"] = node_control.restart_node(d.control, d.node)
        d.log.info(f"node-loss drill: node {d.node} brought back ({d.facts['restart_detail']})")
        _wait_recovered(d, time.monotonic() + d.cfg.recover_timeout_seconds)
    except Exception as exc:
        d.facts["ended_at"] = time.time()
        d.note(f"bringing node {d.node} back failed: {exc}")
        raise permanent(
            f"the node-loss drill could not bring node {d.node} back: {exc}. Start it by hand "
            "(local: make dev restarts missing nodes; operator: kubectl get pods, the operator "
            "recreates a deleted pod), then re-execute the run from failure."
        ) from exc
    d.facts["ended_at"] = time.time()


def _wait_recovered(d: _Drill, deadline: float) -> None:
    remaining = lambda: max(0.0, deadline - time.monotonic())
    while not _backend_ready(d):
        if time.monotonic() >= deadline:
            d.note(
                f"{d.what or f'node {d.node}'} not ready again within {d.cfg.recover_timeout_seconds:g}s "
                f"({_summary(d)}); it was started, the checks fail"
            )
            return
        time.sleep(d.cfg.poll_seconds)
    live, _ = d.poll(f"min({d.prom.crdb('liveness_livenodes')})", lambda v: v == d.phase.nodes, remaining())
    healthy, _ = (
        d.poll(f"sum({d.prom.crdb('ranges_underreplicated')})", lambda v: v == 0, remaining())
        if live
        else (False, None)
    )
    off = _off_target_until(d, deadline) if healthy else -1
    d.facts["off_target"] = off
    if live and healthy and off == 0:
        d.facts["recovered_at"] = time.time()


def _backend_ready(d: _Drill) -> bool:
    try:
        return d.control.status().is_ready(d.phase.nodes)
    except ClusterControlError:
        return False


def _summary(d: _Drill) -> str:
    try:
        return d.control.status().summary()
    except ClusterControlError as exc:
        return f"status unavailable: {exc}"


def _off_target_until(d: _Drill, deadline: float) -> int:
    """Ranges not at the phase's voters/non-voters (verify_replication's rule), polled until 0 or deadline."""
    while True:
        try:
            off = len(ranges_off_target(d.crdb, d.phase))
        except dg.Failure as exc:
            d.note(f"reading the ranges after the drill failed: {exc.description}")
            off = -1
        if off == 0 or time.monotonic() >= deadline:
            return off
        time.sleep(d.cfg.poll_seconds)


def metadata(result: NodeLossResult, grafana_link: str | None) -> dict:
    """Numeric metadata, so Dagster plots each figure across nights; a figure that never happened (no
    detection, no recovery, no poll, no final count) is left out, never -1, which would plot as a real point."""
    out = {
        "node": result.node,
        "nodes": result.nodes,
        **float_figures({"detect_seconds": result.detect_seconds, "recover_seconds": result.recover_seconds,
                         "duration_seconds": result.duration_seconds}),
        "recovered": result.recovered,
        **float_figures({"max_unavailable_seen": result.max_unavailable_seen}),
        "sql_reads_during_outage": result.sql_reads_during_outage,
        "sql_errors_during_outage": len(result.sql_errors_during_outage),
        "stop": result.stop_detail,
        "restart": result.restart_detail,
    }
    if result.ranges_off_target_after is not None:
        out["ranges_off_target_after"] = result.ranges_off_target_after
    if result.notes:
        out["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes))
    if grafana_link:
        out["grafana"] = dg.MetadataValue.url(grafana_link)
    return out


def build_node_loss_asset(env: Environment) -> dg.AssetsDefinition:
    keys = {env.resource_key(k) for k in ("cluster", "crdb", "prometheus", "grafana", "sample_app")}

    @dg.asset(
        key=env.asset_key(DRILL_NAME),
        ins={"grown": dg.AssetIn(key=env.asset_key(LAST_PHASE))},
        group_name=env.group,
        required_resource_keys=keys,
        pool=env.pool,
        tags=env.evolution_tags,
        kinds=cluster_kinds(backend()),  # it stops and starts a node through the cluster control
        owners=list(OWNERS),
        description=f"Node-loss drill after {LAST_PHASE.title.lower()}: under the app's load, one node "
        "(never node 1) is taken away and brought back; the checks prove no range became unavailable, the "
        "app kept serving, live nodes went to 2 and back to 3, under-replicated ranges returned to 0.",
    )
    def node_loss_drill(context: dg.AssetExecutionContext, config: NodeLossConfig, grown: PhaseState):
        res = lambda kind: getattr(context.resources, env.resource_key(kind))
        if grown.phase != LAST_PHASE.name:
            raise permanent(f"the node-loss drill runs after {LAST_PHASE.name}, got {grown.phase}")
        if env == REHEARSAL:  # the live app's traffic is its users'; the rehearsal's is its background load
            res("sample_app").set_background_load(True)
        result = run_node_loss(
            res("cluster").control(), res("prometheus"), res("crdb"), LAST_PHASE, config, env, context.log
        )
        grafana = res("grafana")
        context.log.info(
            grafana.annotate(
                result.stopped_at,
                result.ended_at,
                tags=[DRILL_NAME, env.name],
                text=f"node-loss drill ({env.name}): node {result.node} away, "
                f"detected {result.detect_seconds}s, recovered {result.recover_seconds}s",
            )
        )
        context.add_output_metadata(metadata(result, grafana.link(result.stopped_at, result.ended_at)))
        return result

    return node_loss_drill
