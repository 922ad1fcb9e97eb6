"""HTTPS in front of the stand-in CockroachDB nodes, with a throwaway CA made by `openssl`.

Real CockroachDB serves /_status/vars over TLS signed by the cluster CA, and the local Prometheus config
verifies it (certs/ca.crt). The stand-in serves plain HTTP, so each node gets a TLS front that relays
the scrape: Prometheus then scrapes exactly as it would scrape a local secure cluster.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.doubles.http_reply import send_body


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.crt, node.crt, node.key): the node certificate names 127.0.0.1 and localhost, like
    `cockroach cert create-node 127.0.0.1 localhost` does for a local cluster."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "node.key", directory / "node.csr", directory / "node.crt"
    ext = directory / "node.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
            "-days", "1", "-subj", "/O=Cockroach/CN=Test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/O=Cockroach/CN=node")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "1", "-extfile", str(ext))
    return ca_crt, crt, key


class TlsFront:
    """One HTTPS listener on 127.0.0.1 relaying GET requests to a plain-HTTP upstream."""

    def __init__(self, upstream: str, cert: Path, key: Path):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                try:
                    with urllib.request.urlopen(f"http://{upstream}{self.path}", timeout=5) as r:
                        body, status, ctype = r.read(), r.status, r.headers.get("Content-Type")
                except urllib.error.HTTPError as e:
                    body, status, ctype = e.read(), e.code, "text/plain"
                send_body(self, status, body, ctype or "text/plain")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
