"""What every stand-in HTTP server here shares: writing a JSON response with its length.

(Not named http.py: fake_cockroach.py runs as a script from this folder, where that name would shadow
the standard library's http package.)
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def send_body(handler: BaseHTTPRequestHandler, code: int, data: bytes, content_type: str) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def send_json(handler: BaseHTTPRequestHandler, code: int, body) -> None:
    send_body(handler, code, json.dumps(body).encode(), "application/json")
