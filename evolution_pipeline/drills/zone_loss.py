"""The zone-loss drill: after the last phase, take EVERY node of one zone away under the app's load and prove
the phase's claim that it survives a zone (`survives: {zones: 1}` in the evolution file).

It runs only for a phase that makes the claim and whose layout honours it: the plan's own arithmetic
(evolution/survival.py zone_survivable: where the allocator puts each range's voters, whether any zone holds a
majority) and then the cluster's ranges as SHOW CLUSTER RANGES shows them (no range may keep a voter majority
in the zone). Anything else is refused before a node is stopped: the demo's 1 -> 2 -> 3 claims no zone, so the
drill is refused there (its node-loss drill is the one that applies).

Which zone: config `zone`, else the zone of the phase's highest-numbered node, the same node the node-loss
drill takes by default (the newest, never node 1); when that zone also holds node 1, the last other zone by
name. Never node 1's zone: node 1 ran `cockroach init` and holds the nodelocal://1 backups (drills/nodes.py).

Then like the node-loss drill (node_loss.py, whose outage and recovery steps it shares): it stops the zone's
nodes one after the other, waits until Prometheus shows the survivors agreeing that they are gone (time to
detect), keeps them away `outage_seconds` while reading SQL through the survivors and watching for
unavailable ranges, and brings every one back in a `finally` (also on a timeout, an SQL error or an
interruption), waiting until the backend reports every node ready, Prometheus every node live with no
under-replicated range, and SQL every range on the phase's voters again (time to recover). The asset records
facts; its blocking checks (drills/checks.py) judge the window from Prometheus, the app's checks included.

What stopping a zone means per backend (drills/nodes.py stop_node): locally, each node's process is terminated;
on Kubernetes, each node's pod is deleted and the operator recreates it at once, so the zone is gone only
until the pods are back. A real zone outage (nodes cordoned or a data centre cut off) keeps them away longer:
see README.md "Zone-loss drill".
"""


import time
from dataclasses import dataclass, field

import dagster as dg

from ..configuration import backend, cluster_kinds
from ..environments import OWNERS, REHEARSAL, Environment
from ..evolution import zone_survivable
from ..ops.common import permanent
from ..phases import LAST_PHASE, Phase
from ..resources.cluster import ClusterControlError
from ..resources.prometheus import PrometheusResource
from ..resources.sql import SqlError
from ..state import PhaseState
from ..state_metadata import float_figures
from . import nodes as node_control
from .node_loss import DRILL_NAME as NODE_LOSS
from .node_loss import _Drill, _hold_outage, _wait_recovered

DRILL_NAME = "zone_loss_drill"


class ZoneLossConfig(dg.Config):
    zone: str = ""  # "": the zone of the phase's highest node (never node 1's zone)
    outage_seconds: float = 30.0  # how long the zone stays away once Prometheus has seen its nodes gone
    detect_timeout_seconds: float = 120.0
    recover_timeout_seconds: float = 600.0
    poll_seconds: float = 2.0


@dataclass(frozen=True)
class ZoneLossResult:
    environment: str
    phase: str
    nodes: int
    zone: str
    stopped_nodes: tuple[int, ...]
    stopped_at: float
    ended_at: float
    restarted_at: float | None = None
    detected_at: float | None = None  # first reading of the survivors agreeing on nodes - len(stopped) live
    recovered_at: float | None = None  # every node ready and live, no under-replicated range, on target
    detect_timeout_seconds: float = 0.0
    recover_timeout_seconds: float = 0.0
    max_unavailable_seen: float | None = None  # from the drill's own polls (the checks judge every scrape)
    sql_reads_during_outage: int = 0
    sql_errors_during_outage: tuple[str, ...] = ()
    ranges_off_target_after: int | None = None
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
        return self.nodes - len(self.stopped_nodes)

    @property
    def away(self) -> str:
        return f"zone {self.zone} (nodes {', '.join(map(str, self.stopped_nodes))})"


def choose_zone(phase: Phase, wanted: str = "") -> tuple[str, tuple[int, ...]]:
    """The zone to stop and its nodes, or a permanent failure saying why none may be."""
    zones = phase.zones
    protected = node_control.PROTECTED_NODE
    if wanted:
        if wanted not in zones:
            raise permanent(f"zone-loss drill not started: {phase.name} has no zone {wanted!r}; its zones are "
                            f"{', '.join(f'{z} (nodes {_list(n)})' for z, n in zones.items())}")
        zone = wanted
    else:
        zone = next(z for z, n in zones.items() if phase.nodes in n)
        if protected in zones[zone]:
            others = sorted(z for z, n in zones.items() if protected not in n)
            if not others:
                raise permanent(f"zone-loss drill not started: every node of {phase.name} shares node "
                                f"{protected}'s zone; there is no zone to stop")
            zone = others[-1]
    if protected in zones[zone]:
        raise permanent(f"zone-loss drill not started: zone {zone} holds node {protected}, which initialised the "
                        f"cluster and holds the backups (nodelocal://1); choose another zone (drill config `zone`)")
    return zone, zones[zone]


def refuse_unless_claimed(phase: Phase) -> None:
    """The drill proves a claim the evolution file makes, and only one its layout can keep."""
    survives = phase.survives
    claim = f"{phase.name} claims to survive {survives.nodes} node failure(s) and {survives.zones} zone loss(es)"
    if survives.zones < 1:
        raise permanent(f"zone-loss drill refused: {claim} (`survives` in the evolution file); it proves only a "
                        "zone claim the file makes. The node-loss drill is the one for this phase; an evolution "
                        "with nodes in three zones and `survives: {zones: 1}` (evolutions/three-zones.yaml) "
                        "gets the zone-loss drill.")
    if reason := zone_survivable(phase):
        raise permanent(f"zone-loss drill refused: {claim}, but its layout does not hold it: {reason}")


def run_zone_loss(control, prom: PrometheusResource, crdb, phase: Phase, cfg: ZoneLossConfig, env: Environment,
                  log) -> ZoneLossResult:
    refuse_unless_claimed(phase)
    zone, nodes = choose_zone(phase, cfg.zone)
    drill = _Drill(control, prom, crdb, phase, nodes[-1], cfg, log, what=f"zone {zone} (nodes {_list(nodes)})")
    _preflight(drill, zone, nodes)
    stopped: list[int] = []
    drill.facts["stopped_at"] = time.time()
    try:
        for node in nodes:
            try:
                detail = node_control.stop_node(control, node)
            except ClusterControlError as exc:
                raise permanent(f"the zone-loss drill could not stop node {node} of zone {zone}: {exc}") from exc
            stopped.append(node)
            drill.facts.setdefault("stop_details", []).append(detail)
        log.warning(f"zone-loss drill: {drill.what} taken away ({'; '.join(drill.facts['stop_details'])})")
        _detect(drill, len(nodes))
        _hold_outage(drill)
    finally:
        _bring_back(drill, stopped)
    return _result(drill, env, zone, nodes)


def _result(d: _Drill, env: Environment, zone: str, nodes: tuple[int, ...]) -> ZoneLossResult:
    facts, cfg = d.facts, d.cfg
    return ZoneLossResult(
        environment=env.name, phase=d.phase.name, nodes=d.phase.nodes, zone=zone, stopped_nodes=tuple(nodes),
        stopped_at=facts["stopped_at"], ended_at=facts["ended_at"], restarted_at=facts.get("restarted_at"),
        detected_at=facts.get("detected_at"), recovered_at=facts.get("recovered_at"),
        detect_timeout_seconds=cfg.detect_timeout_seconds, recover_timeout_seconds=cfg.recover_timeout_seconds,
        max_unavailable_seen=facts.get("max_unavailable"), sql_reads_during_outage=facts.get("sql_reads", 0),
        sql_errors_during_outage=tuple(facts.get("sql_errors", ())), ranges_off_target_after=facts.get("off_target"),
        stop_detail="; ".join(facts.get("stop_details", ())), restart_detail="; ".join(facts.get("restart_details", ())),
        notes=tuple(facts.get("notes", ())),
    )


def _preflight(d: _Drill, zone: str, nodes: tuple[int, ...]) -> None:
    """Refuse to start unless the cluster is whole, runs the plan's localities, and no range keeps a voter
    majority inside the zone (nothing is stopped before all of this passed)."""
    try:
        node_control.require_drill_support(d.control)
        status = d.control.status()
    except ClusterControlError as exc:
        raise permanent(f"zone-loss drill not started: {exc}") from exc
    if not status.is_ready(d.phase.nodes):
        raise permanent(f"zone-loss drill not started: the cluster is not at {d.phase.nodes} ready nodes "
                        f"({status.summary()}); nothing was stopped")
    _check_localities(d)
    whole, value = d.poll(f"min({d.prom.crdb('liveness_livenodes')})", lambda v: v == d.phase.nodes,
                          d.cfg.detect_timeout_seconds)
    if not whole:
        raise permanent(f"zone-loss drill not started: Prometheus does not show {d.phase.nodes} live nodes "
                        f"(last value {value}); nothing was stopped")
    lost = {d.phase.localities[n - 1] for n in nodes}
    if fragile := ranges_without_majority(d.crdb, lost):
        raise permanent(f"zone-loss drill not started: {len(fragile)} range(s) keep a voter majority in zone "
                        f"{zone} (e.g. {fragile[:5]}), so losing it would make them unavailable; nothing was "
                        "stopped")


def _check_localities(d: _Drill) -> None:
    """The drill stops the nodes the PLAN puts in the zone: the backend must start them with those localities
    (when it can say; the operator backend takes them from the Kubernetes nodes and cannot)."""
    planned = d.control.planned_localities(d.phase.nodes) or {}
    wrong = {n: loc for n, loc in sorted(planned.items())
             if n <= d.phase.nodes and loc != d.phase.localities[n - 1]}
    if wrong:
        detail = ", ".join(f"node {n}: {loc!r} (plan: {d.phase.localities[n - 1]!r})" for n, loc in wrong.items())
        raise permanent(f"zone-loss drill not started: {d.control.describe()} starts nodes in other localities "
                        f"than {d.phase.name} lists ({detail}); stopping the plan's zone would not stop a zone. "
                        "Start the nodes with the plan's localities; nothing was stopped")


def ranges_without_majority(crdb, lost: set[str]) -> list[int]:
    """Range IDs whose voters outside the `lost` localities are no majority of all their voters (SHOW CLUSTER
    RANGES: replica_localities is each STORE's node's locality, resources/sql.py RangeReplicas). A voter with
    no locality counts as lost: stricter when the cluster cannot say."""
    try:
        ranges = crdb.range_replicas("cluster")
    except SqlError as exc:
        raise permanent(f"zone-loss drill not started: cannot read the ranges: {exc}") from exc
    fragile = []
    for r in ranges:
        places = [r.locality_of(v) for v in r.voters]
        if sum(1 for p in places if p and p not in lost) * 2 <= len(places):
            fragile.append(r.range_id)
    return fragile


def _detect(d: _Drill, stopped: int) -> None:
    survivors = d.phase.nodes - stopped
    gone, _ = d.poll(d.survivors_live(), lambda v: v == survivors, d.cfg.detect_timeout_seconds)
    if gone:
        d.facts["detected_at"] = time.time()
        d.log.info(f"zone-loss drill: Prometheus shows {survivors} live nodes after "
                   f"{d.facts['detected_at'] - d.facts['stopped_at']:.1f}s")


def _bring_back(d: _Drill, stopped: list[int]) -> None:
    """Always runs: restart every node that was stopped (one failing does not keep the others away), then wait
    (bounded) for the backend, Prometheus and SQL to agree."""
    d.facts["restarted_at"] = time.time()
    failures = []
    for node in stopped:
        try:
            d.facts.setdefault("restart_details", []).append(node_control.restart_node(d.control, node))
        except Exception as exc:  # noqa: BLE001  (whatever went wrong, the other nodes still come back)
            failures.append(f"node {node}: {exc}")
    try:
        if not failures:
            done = "; ".join(d.facts.get("restart_details", []))
            d.log.info(f"zone-loss drill: {d.what} brought back ({done})")
            _wait_recovered(d, time.monotonic() + d.cfg.recover_timeout_seconds)
    except Exception as exc:  # noqa: BLE001  (reported below as a permanent failure naming the zone)
        failures.append(str(exc))
    d.facts["ended_at"] = time.time()
    if failures:
        d.note(f"bringing {d.what} back failed: {'; '.join(failures)}")
        raise permanent(
            f"the zone-loss drill could not bring {d.what} back: {'; '.join(failures)}. Start them by hand "
            "(local: make dev restarts missing nodes; operator: kubectl get pods, the operator recreates a "
            "deleted pod), then re-execute the run from failure."
        )


def _list(nodes) -> str:
    return ", ".join(str(n) for n in nodes)


def metadata(result: ZoneLossResult, grafana_link: str | None) -> dict:
    """Numeric metadata, so Dagster plots each figure across nights; a figure that never happened is left
    out, never -1 (node_loss.metadata's rule)."""
    out = {
        "zone": result.zone,
        "stopped_nodes": _list(result.stopped_nodes),
        "nodes": result.nodes,
        **float_figures({"detect_seconds": result.detect_seconds, "recover_seconds": result.recover_seconds,
                         "duration_seconds": result.duration_seconds,
                         "max_unavailable_seen": result.max_unavailable_seen}),
        "recovered": result.recovered,
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


def build_zone_loss_asset(env: Environment) -> dg.AssetsDefinition:
    keys = {env.resource_key(k) for k in ("cluster", "crdb", "prometheus", "grafana", "sample_app")}

    @dg.asset(
        key=env.asset_key(DRILL_NAME),
        ins={"grown": dg.AssetIn(key=env.asset_key(LAST_PHASE))},
        # After the node-loss drill, never beside it: two drills stopping nodes at once prove nothing.
        deps=[env.asset_key(NODE_LOSS)] if env == REHEARSAL else [],
        group_name=env.group,
        required_resource_keys=keys,
        pool=env.pool,
        tags=env.evolution_tags,
        kinds=cluster_kinds(backend()),  # it stops and starts nodes through the cluster control
        owners=list(OWNERS),
        description=f"Zone-loss drill after {LAST_PHASE.title.lower()}: under the app's load, every node of one "
        "zone is taken away and brought back; the checks prove no range became unavailable, the app kept "
        "serving within its error budget, live nodes dropped by the zone's nodes and came back, under-replicated "
        "ranges returned to 0. Refused unless the phase claims to survive a zone and its layout holds it.",
    )
    def zone_loss_drill(context: dg.AssetExecutionContext, config: ZoneLossConfig, grown: PhaseState):
        res = lambda kind: getattr(context.resources, env.resource_key(kind))
        if grown.phase != LAST_PHASE.name:
            raise permanent(f"the zone-loss drill runs after {LAST_PHASE.name}, got {grown.phase}")
        if env == REHEARSAL:  # the rehearsal's only traffic is its background load
            res("sample_app").set_background_load(True)
        result = run_zone_loss(res("cluster").control(), res("prometheus"), res("crdb"), LAST_PHASE, config, env,
                               context.log)
        grafana = res("grafana")
        context.log.info(grafana.annotate(
            result.stopped_at, result.ended_at, tags=[DRILL_NAME, env.name],
            text=f"zone-loss drill ({env.name}): {result.away} away, detected {result.detect_seconds}s, "
                 f"recovered {result.recover_seconds}s"))
        context.add_output_metadata(metadata(result, grafana.link(result.stopped_at, result.ended_at)))
        return result

    return zone_loss_drill
