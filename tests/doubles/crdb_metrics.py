"""Stand-in for CockroachDB nodes' `/_status/vars` endpoint, in CockroachDB's real exposition format.

No CockroachDB binary can run here, so tests serve the metric families CockroachDB documents (names with
dots turned into underscores, `node_id` on every series, `store` on store-level ones, HELP/TYPE lines,
nanosecond latency histograms with fixed buckets) with values the test controls. One HTTP server per node,
like a real cluster, so a real Prometheus scrapes one `instance` per node.

What it proves: that our PromQL and scrape configs work on series shaped like CockroachDB's. What it does
not prove: CockroachDB's values; those come from a real cluster.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.doubles.http_reply import send_body

NODE, STORE = "node", "store"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # gauge | counter | histogram
    level: str  # node | store
    help: str
    default: float = 0.0
    # Counters grow by this much per scrape so rate() has something to show.
    per_scrape: float = 0.0


# The families the pipeline's checks and the dashboards use, as CockroachDB exposes them.
CATALOGUE: dict[str, MetricSpec] = {
    s.name: s
    for s in [
        MetricSpec("liveness_livenodes", "gauge", NODE,
                   "Number of live nodes in the cluster (will be 0 if this node is not itself live)"),
        MetricSpec("liveness_heartbeatlatency", "gauge", NODE, "Node liveness heartbeat latency", 2e6),
        MetricSpec("ranges", "gauge", STORE, "Number of ranges", 70),
        MetricSpec("ranges_underreplicated", "gauge", STORE,
                   "Number of ranges with fewer live replicas than the replication target"),
        MetricSpec("ranges_unavailable", "gauge", STORE,
                   "Number of ranges with fewer live replicas than needed for quorum"),
        MetricSpec("ranges_overreplicated", "gauge", STORE,
                   "Number of ranges with more live replicas than the replication target"),
        MetricSpec("replicas", "gauge", STORE, "Number of replicas", 70),
        MetricSpec("replicas_leaseholders", "gauge", STORE, "Number of lease holders", 23),
        MetricSpec("replicas_leaders", "gauge", STORE, "Number of raft leaders", 23),
        MetricSpec("replicas_leaders_not_leaseholders", "gauge", STORE,
                   "Number of replicas that are Raft leaders whose range lease is held by another store"),
        MetricSpec("replicas_quiescent", "gauge", STORE, "Number of quiesced replicas", 50),
        MetricSpec("range_adds", "counter", STORE, "Number of range additions", per_scrape=1),
        MetricSpec("range_removes", "counter", STORE, "Number of range removals", per_scrape=1),
        MetricSpec("range_splits", "counter", STORE, "Number of range splits", per_scrape=1),
        MetricSpec("range_merges", "counter", STORE, "Number of range merges"),
        MetricSpec("range_snapshots_generated", "counter", STORE, "Number of generated snapshots", per_scrape=1),
        MetricSpec("range_snapshots_applied_voter", "counter", STORE,
                   "Number of snapshots applied by voter replicas", per_scrape=1),
        MetricSpec("range_snapshots_applied_initial", "counter", STORE,
                   "Number of snapshots applied for initial upreplication", per_scrape=1),
        MetricSpec("rebalancing_range_rebalances", "counter", STORE,
                   "Number of range rebalance operations motivated by store-level load imbalances", per_scrape=1),
        MetricSpec("rebalancing_lease_transfers", "counter", STORE,
                   "Number of lease transfers motivated by store-level load imbalances", per_scrape=1),
        MetricSpec("leases_transfers_success", "counter", STORE, "Number of successful lease transfers",
                   per_scrape=1),
        MetricSpec("queue_replicate_addreplica", "counter", STORE,
                   "Number of replica additions attempted by the replicate queue", per_scrape=1),
        MetricSpec("queue_replicate_removereplica", "counter", STORE,
                   "Number of replica removals attempted by the replicate queue", per_scrape=1),
        MetricSpec("queue_replicate_rebalancereplica", "counter", STORE,
                   "Number of replica rebalancer-initiated additions attempted by the replicate queue",
                   per_scrape=1),
        MetricSpec("queue_replicate_pending", "gauge", STORE, "Number of pending replicas in the replicate queue"),
        MetricSpec("rebalancing_queriespersecond", "gauge", STORE,
                   "Number of kv-level requests received per second by the store", 120),
        MetricSpec("capacity", "gauge", STORE, "Total storage capacity", 100e9),
        MetricSpec("capacity_available", "gauge", STORE, "Available storage capacity", 80e9),
        MetricSpec("capacity_used", "gauge", STORE, "Used storage capacity", 2e9),
        MetricSpec("sql_select_count", "counter", NODE, "Number of SQL SELECT statements successfully executed",
                   per_scrape=50),
        MetricSpec("sql_insert_count", "counter", NODE, "Number of SQL INSERT statements successfully executed",
                   per_scrape=20),
        MetricSpec("sql_update_count", "counter", NODE, "Number of SQL UPDATE statements successfully executed",
                   per_scrape=5),
        MetricSpec("sql_delete_count", "counter", NODE, "Number of SQL DELETE statements successfully executed",
                   per_scrape=1),
        MetricSpec("sql_query_count", "counter", NODE, "Number of SQL operations started including queries, and transaction control statements",
                   per_scrape=80),
        MetricSpec("sql_failure_count", "counter", NODE,
                   "Number of statements resulting in a planning or runtime error"),
        MetricSpec("sql_txn_commit_count", "counter", NODE, "Number of SQL transaction COMMIT statements successfully executed",
                   per_scrape=20),
        MetricSpec("txn_restarts_serializable", "counter", NODE,
                   "Number of restarts due to a forwarded commit timestamp and isolation=SERIALIZABLE"),
        MetricSpec("sql_conns", "gauge", NODE, "Number of open SQL connections", 12),
        MetricSpec("sql_service_latency", "histogram", NODE,
                   "Latency of SQL request execution", per_scrape=50),
        MetricSpec("sql_exec_latency", "histogram", NODE,
                   "Latency of SQL statement execution", per_scrape=50),
        MetricSpec("sys_cpu_combined_percent_normalized", "gauge", NODE,
                   "Current user+system cpu percentage consumed by the CRDB process, normalized 0-1 by number of cores", 0.2),
        MetricSpec("sys_cpu_user_ns", "counter", NODE, "Total user cpu time consumed by the CRDB process",
                   per_scrape=1e8),
        MetricSpec("sys_cpu_sys_ns", "counter", NODE, "Total system cpu time consumed by the CRDB process",
                   per_scrape=2e7),
        MetricSpec("sys_rss", "gauge", NODE, "Current process RSS", 800e6),
        MetricSpec("sys_uptime", "gauge", NODE, "Process uptime", 3600),
    ]
}

# CockroachDB's fixed latency buckets since v23.1 (nanoseconds; a representative subset of the real ones).
LATENCY_BUCKETS_NS = (
    500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000, 33_000_000, 67_000_000,
    134_000_000, 268_000_000, 536_000_000, 1_073_741_824, 2_147_483_648, 4_294_967_296, 8_589_934_592,
)


class CrdbNodeMetrics:
    """The metric values of one node (with one store, store id == node id, as the operator runs it)."""

    def __init__(self, node_id: int, live_nodes: int = 1):
        self.node_id = node_id
        self.values: dict[str, float] = {name: spec.default for name, spec in CATALOGUE.items()}
        self.values["liveness_livenodes"] = live_nodes
        self.latency_ns = 2_000_000.0  # every observation falls in this bucket
        # A node that is not running answers no scrape (Prometheus marks the target down).
        self.up = True
        # Called before each scrape, so a test can derive values from its own model of the cluster.
        self.before_scrape = None
        self._lock = threading.Lock()

    def set(self, **values: float) -> None:
        with self._lock:
            for name, value in values.items():
                if name not in CATALOGUE:
                    raise KeyError(f"{name} is not a CockroachDB metric this double knows")
                self.values[name] = value

    def render(self) -> str:
        with self._lock:
            return self._render()

    def _render(self) -> str:
        node = f'node_id="{self.node_id}"'
        store = f'store="{self.node_id}",{node}'
        out: list[str] = []
        for name, spec in CATALOGUE.items():
            labels = store if spec.level == STORE else node
            out.append(f"# HELP {name} {spec.help}")
            out.append(f"# TYPE {name} {spec.kind}")
            if spec.kind == "histogram":
                count = self.values[name]
                for le in LATENCY_BUCKETS_NS:
                    n = count if le >= self.latency_ns else 0
                    out.append(f'{name}_bucket{{{labels},le="{le}"}} {n:g}')
                out.append(f'{name}_bucket{{{labels},le="+Inf"}} {count:g}')
                out.append(f"{name}_sum{{{labels}}} {count * self.latency_ns:g}")
                out.append(f"{name}_count{{{labels}}} {count:g}")
            else:
                out.append(f"{name}{{{labels}}} {self.values[name]:g}")
            if spec.per_scrape:
                self.values[name] += spec.per_scrape
        return "\n".join(out) + "\n"


class CrdbMetricsCluster:
    """N stand-in nodes, each serving /_status/vars on its own 127.0.0.1 port."""

    def __init__(self, nodes: int = 1):
        self.nodes: list[CrdbNodeMetrics] = []
        self._servers: list[ThreadingHTTPServer] = []
        for _ in range(nodes):
            self.add_node()

    def add_node(self) -> CrdbNodeMetrics:
        node = CrdbNodeMetrics(len(self.nodes) + 1)
        self.nodes.append(node)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/_status/vars":
                    self.send_error(404)
                    return
                if node.before_scrape:
                    node.before_scrape(node)
                if not node.up:
                    self.send_error(503, "node not running")
                    return
                send_body(self, 200, node.render().encode(), "text/plain; version=0.0.4; charset=utf-8")

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return node

    @property
    def targets(self) -> list[str]:
        return [f"127.0.0.1:{s.server_address[1]}" for s in self._servers]

    def set_all(self, **values: float) -> None:
        for node in self.nodes:
            node.set(**values)

    def close(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()
