"""Stand-in for Grafana's HTTP annotations API (no Grafana server can run here).

Follows the documented endpoint: POST /api/annotations with a JSON body {time, timeEnd, tags, text} and a
Bearer service-account token; answers 200 {"message": "Annotation added", "id": N}, 401 without a valid
token. It records what it received so tests can assert on it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.doubles.http_reply import send_json


class GrafanaApiDouble:
    def __init__(self, token: str):
        self.token = token
        self.annotations: list[dict] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/api/annotations":
                    code, answer = 404, {"message": "Not found"}
                elif self.headers.get("Authorization") != f"Bearer {double.token}":
                    code, answer = 401, {"message": "Unauthorized"}
                else:
                    double.annotations.append(body)
                    code, answer = 200, {"message": "Annotation added", "id": len(double.annotations)}
                send_json(self, code, answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
