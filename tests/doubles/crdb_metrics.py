"""Stand-in for CockroachDB nodes' `/_status/vars` endpoint, with values the test controls. NOT CockroachDB.

One HTTP server per node, like a real cluster, so a real Prometheus scrapes one `instance` per node. The
page is built by tests/doubles/crdb_exposition.py from CockroachDB's sources: real names, types and HELP
texts, `node_id` on every series, `store` on store-level ones, latency histograms with the real 60
IOLatencyBuckets, numbers printed as Go prints them.

What it withholds, like CockroachDB:
- no metrics before the node has a node ID: `/_status/vars` is only routed once the server has started
  (pkg/server/server_http.go setupRoutes, called after the node got its ID), so before that the HTTP mux
  answers Go's 404 "404 page not found"; a node_id="0" series is never served (recorder.go AddNode);
- a node that is down answers nothing (the connection is closed without a response).

What it proves: that our PromQL, recording/alert rules and scrape configs work on series shaped exactly
like CockroachDB's, and that per-store values are summed the way the dashboards sum them.
What it does not prove: any value. The values are the test's; CockroachDB's come from a real cluster.

Driving it (the API tests/pipeline/conftest.py uses):
- `CrdbMetricsCluster(n)`: n nodes with IDs 1..n, one store each (store ID == node ID, as the operator and
  the local backend run them); `.nodes`, `.targets` (host:port per node), `.add_node()`, `.close()`.
- `node.set(**values)`: node-level families, and store-level ones on the node's only store.
- `node.set_store(store_id, **values)`: store-level families of one store (per-store values; a store that
  does not exist yet is added to the node).
- `node.observe(name, value_ns, times)`: observations into a histogram family.
- `node.node_id = None`: the node has no ID yet (404, no metrics); `node.up = False`: the node is down.
- `node.before_scrape(node)`: called before each scrape, to derive values from the test's own model.
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.doubles.crdb_exposition import (
    CATALOGUE,
    CONTENT_TYPE,
    NODE,
    STORE,
    Histogram,
    known,
    render,
)
from tests.doubles.http_reply import send_body

__all__ = ["CATALOGUE", "CrdbMetricsCluster", "CrdbNodeMetrics"]

# Every observation the stand-in makes on its own falls at 2 ms (a healthy heartbeat or statement).
DEFAULT_LATENCY_NS = 2_000_000.0
# Go's http.NotFound (net/http): what the mux answers for a path that is not routed yet.
NOT_FOUND = b"404 page not found\n"


def _defaults(level: str) -> dict:
    return {s.name: (Histogram() if s.kind == "histogram" else s.default)
            for s in CATALOGUE.values() if s.level == level}


class CrdbNodeMetrics:
    """The metric values of one node and its stores."""

    def __init__(self, node_id: int | None, live_nodes: int = 1):
        self.node_id = node_id
        self.node_values: dict = _defaults(NODE)
        self.node_values["liveness_livenodes"] = live_nodes
        self.stores: dict[int, dict] = {node_id: _defaults(STORE)} if node_id else {}
        # A node that is not running answers no scrape (Prometheus marks the target down).
        self.up = True
        # Called before each scrape, so a test can derive values from its own model of the cluster.
        self.before_scrape = None
        self._lock = threading.Lock()

    @property
    def values(self) -> dict:
        """Node-level values merged with the only store's (read-only view, for assertions)."""
        return {**self.node_values, **(self._only_store() if len(self.stores) == 1 else {})}

    def set(self, **values: float) -> None:
        with self._lock:
            for name, value in values.items():
                if known(name).level == NODE:
                    self._set_scalar(self.node_values, name, value)
                else:
                    self._set_scalar(self._only_store(), name, value)

    def set_store(self, store_id: int, **values: float) -> None:
        with self._lock:
            store = self.stores.setdefault(store_id, _defaults(STORE))
            for name, value in values.items():
                known(name, STORE)
                self._set_scalar(store, name, value)

    def observe(self, name: str, value_ns: float, times: int = 1) -> None:
        spec = known(name, NODE)
        if spec.kind != "histogram":
            raise KeyError(f"{name} is a {spec.kind}, not a histogram")
        with self._lock:
            self.node_values[name].observe(value_ns, times)

    def render(self) -> str | None:
        """The page, or None while the node has no ID (the endpoint is not routed yet)."""
        with self._lock:
            if not self.node_id:
                return None
            page = render(self.node_id, self.node_values, self.stores)
            self._advance()
            return page

    def _only_store(self) -> dict:
        if len(self.stores) != 1:
            raise ValueError(f"node {self.node_id} has {len(self.stores)} stores: use set_store(store_id, ...)")
        return next(iter(self.stores.values()))

    @staticmethod
    def _set_scalar(values: dict, name: str, value: float) -> None:
        if CATALOGUE[name].kind == "histogram":
            raise KeyError(f"{name} is a histogram: use observe()")
        values[name] = value

    def _advance(self) -> None:
        """Counters and histogram counts grow between scrapes, so rate() has something to show."""
        for values in [self.node_values, *self.stores.values()]:
            for name, value in values.items():
                step = CATALOGUE[name].per_scrape
                if not step:
                    continue
                if isinstance(value, Histogram):
                    value.observe(DEFAULT_LATENCY_NS, int(step))
                else:
                    values[name] = value + step


class _NodeServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A scraper that drops a kept-alive connection (Prometheus stopping with the bench) is no error of the
        # node; socketserver would print its traceback into the test run's output.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class CrdbMetricsCluster:
    """N stand-in nodes, each serving /_status/vars on its own 127.0.0.1 port."""

    def __init__(self, nodes: int = 1):
        self.nodes: list[CrdbNodeMetrics] = []
        self._servers: list[_NodeServer] = []
        for _ in range(nodes):
            self.add_node()

    def add_node(self) -> CrdbNodeMetrics:
        node = CrdbNodeMetrics(len(self.nodes) + 1)
        self.nodes.append(node)
        server = _NodeServer(("127.0.0.1", 0), _handler_for(node))
        server.open_connections = set()
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
        # shutdown() waits for serve_forever's next poll (0.5 s): all at once, not one after another (12
        # nodes of a bench took 3-4 s, at the end of every worker's session).
        closing = [threading.Thread(target=s.shutdown) for s in self._servers]
        for t in closing:
            t.start()
        for t in closing:
            t.join()
        for s in self._servers:
            s.server_close()
            # A kept-alive connection would go on being served: a closed cluster answers nothing.
            for conn in list(s.open_connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _handler_for(node: CrdbNodeMetrics):
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as CockroachDB's Go HTTP server answers: Prometheus then scrapes every second over one
        # connection per node instead of a new connection (and a new handler thread) each time; a scrape of
        # the bench's stand-ins cost ~1.1 ms of CPU here over HTTP/1.0, ~0.6 ms kept alive. Every answer
        # carries a Content-Length (send_body).
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY (Go sets it on every TCP connection),
        # Nagle + delayed ACK hold each kept-alive answer ~40 ms.
        disable_nagle_algorithm = True

        def setup(self):
            super().setup()
            self.server.open_connections.add(self.connection)

        def finish(self):
            self.server.open_connections.discard(self.connection)
            super().finish()

        def do_GET(self):
            if node.before_scrape:
                node.before_scrape(node)
            if not node.up:
                self.close_connection = True  # a stopped process answers nothing
                return
            page = node.render() if self.path.split("?")[0] == "/_status/vars" else None
            if page is None:
                return send_body(self, 404, NOT_FOUND, "text/plain; charset=utf-8")
            send_body(self, 200, page.encode(), CONTENT_TYPE)

        def log_message(self, *args):
            pass

    return Handler
