"""Stand-in for Grafana's HTTP annotations API (no Grafana server can run here).

Follows the documented endpoints (grafana.com/docs/grafana/latest/developers/http_api/annotations/) and the
store behind them (grafana/grafana pkg/services/annotations/annotationsimpl/xorm_store.go):

- POST /api/annotations with a JSON body {time, timeEnd, tags, text} and a Bearer service-account token;
  answers 200 {"message": "Annotation added", "id": N}, 401 without a valid token.
- GET /api/annotations?from=&to=&tags=&tags=&type=&limit= (find_annotations below): only with a valid token
  (401 otherwise); `tags` given several times is an AND (the store counts the matching tags and wants all of
  them, unless matchAny=true); from/to select annotations overlapping the range, only when both are > 0
  (`a.epoch <= to AND a.epoch_end >= from`); newest end first (`ORDER BY a.epoch_end DESC, a.epoch DESC`);
  at most `limit` (docs: "Optional - default is 100"). Each item carries id, time, timeEnd, text, tags.

It records what it received so tests can assert on it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.doubles.http_reply import send_json

DEFAULT_LIMIT = 100  # the docs' Find Annotations: limit "Optional - default is 100"


def find_annotations(stored: list[dict], query: str) -> list[dict]:
    """What GET /api/annotations?<query> answers for the posted bodies `stored` (ids are 1-based, in order)."""
    q = parse_qs(query)
    wanted = q.get("tags", [])
    match_any = q.get("matchAny", ["false"])[0] == "true"
    start, end = int(q.get("from", ["0"])[0]), int(q.get("to", ["0"])[0])
    limit = int(q.get("limit", ["0"])[0]) or DEFAULT_LIMIT
    items = []
    for i, body in enumerate(stored, start=1):
        tags = body.get("tags", [])
        hits = sum(1 for t in wanted if t in tags)
        if wanted and (hits == 0 if match_any else hits != len(wanted)):
            continue
        time_, time_end = body.get("time", 0), body.get("timeEnd") or body.get("time", 0)
        if start > 0 and end > 0 and not (time_ <= end and time_end >= start):
            continue
        if q.get("type", [""])[0] == "alert":  # no alert annotations here: only user-made ones
            continue
        items.append({"id": i, "alertId": 0, "dashboardUID": body.get("dashboardUID", ""), "panelId": 0,
                      "time": time_, "timeEnd": time_end, "text": body.get("text", ""), "tags": tags})
    items.sort(key=lambda a: (a["timeEnd"], a["time"]), reverse=True)
    return items[:limit]


class GrafanaApiDouble:
    def __init__(self, token: str):
        self.token = token
        self.annotations: list[dict] = []
        self.finds = 0  # GET /api/annotations answered
        double = self

        class Handler(BaseHTTPRequestHandler):
            def authorized(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {double.token}"

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path != "/api/annotations":
                    return send_json(self, 404, {"message": "Not found"})
                if not self.authorized():
                    return send_json(self, 401, {"message": "Unauthorized"})
                double.finds += 1
                send_json(self, 200, find_annotations(double.annotations, url.query))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/api/annotations":
                    code, answer = 404, {"message": "Not found"}
                elif not self.authorized():
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
