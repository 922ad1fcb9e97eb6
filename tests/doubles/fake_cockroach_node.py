"""The running node of the stand-in `cockroach` (tests/doubles/fake_cockroach.py): membership, liveness and
the HTTP endpoints a real node serves before and after it joins a cluster. NOT CockroachDB.

Each rule cites the CockroachDB source it follows (cockroachdb/cockroach, v26.2-era master, unless noted):
- serve mode: a node is "initializing" until it is bootstrapped by `cockroach init` or joins an initialized
  cluster, "operational" afterwards and "draining" once asked to stop (pkg/server/serve_mode.go).
- `/health` (no ready): answered in every mode with 200 and an empty message; Admin/Health is one of the
  rpcsAllowedWhileBootstrapping (serve_mode.go) and /health is routed before init
  (pkg/server/server_http.go handleHealth).
- `/health?ready=1` (pkg/server/admin.go systemAdminServer.checkReadinessForHealthCheck): 503 gRPC code 14
  "node is waiting for cluster initialization" while initializing, "node is shutting down" while draining
  (grpcServer.health), "node is not healthy" unless the node's own liveness record is live and not
  draining (NodeVitality.IsLive(AdminHealthCheck) = isAvailableNotDraining,
  pkg/kv/kvserver/liveness/livenesspb/liveness.go); else 200. The bodies are the gateway's JSON, indented
  as CockroachDB prints it (cockroachdb/docs src/current/v26.2/monitoring-and-alerting.md).
- liveness: a node heartbeats its record on joining and renews it when less than half of its 6 s is left
  (pkg/base/config.go defaultRangeLeaseDuration, livenessRenewalFraction); a record is live until it expires.
- `/_status/vars`: not routed until the server has started with a node ID (server_http.go setupRoutes,
  called after the node started): Go's 404 before. Afterwards the recorder's page
  (pkg/server/status/recorder.go) built by crdb_exposition.py: liveness_livenodes (0 unless this node is
  itself live, liveness.go numLiveNodes), liveness_heartbeatlatency (a histogram of this stand-in's own
  heartbeat writes, IOLatencyBuckets), sys_uptime, and its one store's gauges labelled store + node_id.

What it does not model: ranges, replication and SQL. This stand-in holds no ranges, so its store gauges
(ranges, replicas, ranges_underreplicated, ...) are present with their real names and labels and the value
0; replication values are the pipeline world's (tests/doubles/crdb_metrics.py). It also does not model the
"node is not accepting SQL clients" condition (the SQL server becoming ready after the node started).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

# http.server, crdb_exposition and http_reply are imported where they are used: only `cockroach start` runs a
# node, while `node status` and `init` use just split_addr/liveness_live, and importing the HTTP server for
# them cost each such invocation more CPU than all the rest of it.

# pkg/base/config.go: liveness lasts RangeLeaseDuration (defaultRangeLeaseDuration = 6 s) and is renewed
# once less than livenessRenewalFraction (0.5) of it is left.
LIVENESS_DURATION = 6.0
LIVENESS_RENEWAL = LIVENESS_DURATION * 0.5

INITIALIZING, OPERATIONAL, DRAINING = "initializing", "operational", "draining"
# The gateway's error body for a gRPC Unavailable (code 14), as CockroachDB's indenting JSON marshaler prints
# it (docs: monitoring-and-alerting.md "/health?ready=1"); the 200 body is the empty HealthResponse.
UNAVAILABLE_BODY = '{\n  "error": "%s",\n  "code": 14,\n  "message": "%s",\n  "details": [\n  ]\n}'
EMPTY_BODY = "{\n\n}"


def split_addr(addr: str, default_port: int) -> tuple[str, int]:
    host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "")
    return (host or "127.0.0.1"), int(port or default_port)


def reachable(addr: str) -> bool:
    try:
        with socket.create_connection(split_addr(addr, 26257), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def liveness_live(record: dict | None, now: float | None = None) -> bool:
    """livenesspb Liveness.IsLive: the record has not expired."""
    return bool(record) and (now or time.time()) < record["expiration"]


# --- shared cluster state (stands in for gossip and the liveness range) ----------------------------------


class Cluster:
    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = directory / "fake-cluster.json"

    @contextmanager
    def locked(self):
        with open(self.dir / "fake-cluster.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            yield state
            # Whole or not at all: readers outside the lock (read(), tests/pipeline/backend_worlds.py) never
            # see a half-written file.
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state, indent=2))
            os.replace(tmp, self.path)

    def read(self) -> dict:
        """The state as last written, read without the lock: each write replaces the file whole, so a read
        sees one state or the next. (Read under the lock, it was written back each time: five times a second
        per node for its ticks alone.)"""
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            state = {"initialized": False, "inits": 0, "members": {}}
        state.setdefault("liveness", {})
        return state


# --- the node -----------------------------------------------------------------------------------------------


class FakeNode:
    def __init__(self, cluster: Cluster, listen_addr: str, sql_addr: str, join: list[str], locality: str,
                 first_heartbeat_delay: float = 0.0):
        from crdb_exposition import Histogram

        self.cluster, self.listen_addr, self.sql_addr = cluster, listen_addr, sql_addr
        self.join, self.locality = [j for j in join if j], locality
        self.started_at = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
        self.started = time.time()
        self.mode = INITIALIZING
        self.node_id = 0
        self.joined_at = 0.0
        self.first_heartbeat_delay = first_heartbeat_delay
        self.heartbeat_latency = Histogram()

    def member(self, node_id: int) -> dict:
        return {"id": node_id, "sql_address": self.sql_addr, "locality": self.locality, "pid": os.getpid(),
                "started_at": self.started_at}

    def _joined(self, node_id: int) -> None:
        self.node_id, self.joined_at, self.mode = node_id, time.time(), OPERATIONAL

    def handle_rpc(self, line: str) -> str:
        if line != "INIT":
            return "ERR unknown rpc"
        with self.cluster.locked() as state:
            state["inits"] = state.get("inits", 0) + 1
            if state["initialized"]:
                return "ALREADY"
            state["initialized"] = True
            state["members"][self.listen_addr] = self.member(1)
        self._joined(1)
        return "OK"

    def handle_sql(self, line: str) -> str:
        if line != "NODE_STATUS":
            return "ERR this is a SQL port"
        state = self.cluster.read()
        return json.dumps(state) if state["initialized"] else "ERR cluster not initialized"

    def tick(self) -> None:
        """The node's background work, every 0.2 s: join when it can, keep its liveness record live."""
        if self.mode == INITIALIZING:
            self.try_join()
        elif self.mode == OPERATIONAL:
            self.heartbeat_if_due()

    def try_join(self) -> None:
        """Join once the cluster is initialized and a join address of another live node answers."""
        state = self.cluster.read()
        if not state["initialized"]:
            return
        if self.listen_addr not in state["members"]:
            peers = [j for j in self.join if j != self.listen_addr and j in state["members"]]
            if not any(reachable(p) for p in peers):
                return
        with self.cluster.locked() as state:
            me = state["members"].get(self.listen_addr)
            if me is None:
                me = self.member(max([m["id"] for m in state["members"].values()], default=0) + 1)
                state["members"][self.listen_addr] = me
            me["pid"] = os.getpid()
        self._joined(me["id"])

    def heartbeat_if_due(self) -> None:
        now = time.time()
        if now < self.joined_at + self.first_heartbeat_delay:
            return
        record = self.cluster.read()["liveness"].get(str(self.node_id))
        if record and record["expiration"] - now > LIVENESS_RENEWAL and not record["draining"]:
            return
        self.write_liveness(draining=False)

    def write_liveness(self, draining: bool) -> None:
        started = time.perf_counter()
        with self.cluster.locked() as state:
            old = state["liveness"].get(str(self.node_id))
            # A heartbeat after the record expired starts a new epoch (liveness.go heartbeatInternal).
            epoch = old["epoch"] if liveness_live(old) else (old["epoch"] + 1 if old else 1)
            state["liveness"][str(self.node_id)] = {
                "expiration": time.time() + LIVENESS_DURATION, "draining": draining, "epoch": epoch}
        self.heartbeat_latency.observe((time.perf_counter() - started) * 1e9)

    def drain(self) -> None:
        """SIGTERM: stop being ready first (grpc mode draining, then the liveness record's draining flag)."""
        if self.mode == OPERATIONAL:
            self.mode = DRAINING
            self.write_liveness(draining=True)

    # --- what the HTTP endpoints report

    def readiness(self) -> str | None:
        """None when ready, else the message /health?ready=1 answers with."""
        if self.mode == INITIALIZING:
            return "node is waiting for cluster initialization"
        if self.mode == DRAINING:
            return "node is shutting down"
        record = self.cluster.read()["liveness"].get(str(self.node_id))
        if not liveness_live(record) or record["draining"]:
            return "node is not healthy"
        return None

    def live_nodes(self, liveness: dict) -> int:
        """liveness.go numLiveNodes: 0 unless this node is itself live, else the live records."""
        now = time.time()
        if not liveness_live(liveness.get(str(self.node_id)), now):
            return 0
        return sum(1 for record in liveness.values() if liveness_live(record, now))

    def metrics_page(self) -> str:
        from crdb_exposition import STORE_FAMILIES, render

        node_values = {
            "liveness_livenodes": self.live_nodes(self.cluster.read()["liveness"]),
            "liveness_heartbeatlatency": self.heartbeat_latency,
            "sys_uptime": float(int(time.time() - self.started)),
        }
        no_ranges = {s.name: 0.0 for s in STORE_FAMILIES if s.kind == "gauge"}
        return render(self.node_id, node_values, {self.node_id: no_ranges})


def health_server(addr: tuple[str, int], node: FakeNode):
    """The node's HTTP server (/health, /_status/vars), a ThreadingHTTPServer with daemon threads."""
    import http.server

    from crdb_exposition import CONTENT_TYPE
    from http_reply import send_body

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path == "/health":
                problem = node.readiness() if "ready=1" in query.split("&") else None
                if problem:
                    body = UNAVAILABLE_BODY % (problem, problem)
                    return send_body(self, 503, body.encode(), "application/json")
                return send_body(self, 200, EMPTY_BODY.encode(), "application/json")
            if path == "/_status/vars" and node.node_id:
                return send_body(self, 200, node.metrics_page().encode(), CONTENT_TYPE)
            # Go's http.NotFound: nothing else is routed before the server has started.
            send_body(self, 404, b"404 page not found\n", "text/plain; charset=utf-8")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(addr, Handler)
    server.daemon_threads = True
    return server
