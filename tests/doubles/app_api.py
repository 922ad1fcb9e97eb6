"""Stand-in for the sample app's HTTP API, for the pipeline tests only.

The pipeline talks to the app through three things: GET /readyz, POST /control/background/{start,stop} and
the metrics Prometheus scrapes from /metrics. This double answers exactly those, with the app's metric
names and labels (app_requests_total{route,method,status}) produced by the real prometheus-client, so a
real Prometheus scrapes it like the app. The real app is tested on its own in tests/app.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tests.doubles.http_reply import send_json


class AppApiDouble:
    def __init__(self, rps: float = 20.0):
        self.registry = CollectorRegistry()
        self.requests = Counter("app_requests", "Requests served", ["route", "method", "status"],
                                registry=self.registry)
        self.ready = True
        # "writer" mimics the app before phase 1 created app_reader (or with a wrong reader password).
        self.reader_path = "reader"
        self.rps = rps
        self.error_ratio = 0.0
        self.background_load = False
        self.control_calls: list[str] = []
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        threading.Thread(target=self._traffic, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def _traffic(self) -> None:
        n = 0
        while not self._stop.wait(1.0 / self.rps if self.rps else 0.2):
            if not self.rps:
                continue
            n += 1
            route = "/login" if n % 5 == 0 else "/search"
            method = "POST" if route == "/login" else "GET"
            failed = self.error_ratio and (n % max(1, round(1 / self.error_ratio)) == 0)
            self.requests.labels(route, method, "503" if failed else "200").inc()

    def _handler(self):
        app = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, code: int, body: dict) -> None:
                send_json(self, code, body)

            def do_GET(self):  # noqa: N802
                if self.path == "/readyz":
                    if app.ready:
                        degraded = ["reader"] if app.reader_path == "writer" else []
                        self._json(200, {"ready": True, "degraded": degraded, "reader_path": app.reader_path,
                                         "checks": {"writer": {"ok": True}, "reader": {"ok": not degraded}}})
                    else:
                        self._json(503, {"ready": False, "checks": {"writer": "unreachable"}})
                elif self.path == "/metrics":
                    data = generate_latest(app.registry)
                    self.send_response(200)
                    self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self._json(404, {"error": "not_found", "detail": self.path})

            def do_POST(self):  # noqa: N802
                if self.path in ("/control/background/start", "/control/background/stop"):
                    app.background_load = self.path.endswith("start")
                    app.control_calls.append(self.path)
                    self._json(200, {"background": app.background_load})
                else:
                    self._json(404, {"error": "not_found", "detail": self.path})

            def log_message(self, *args):
                pass

        return Handler

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        time.sleep(0)
